//! Progress of the training commands: `train::Progress` shown on stderr as an `indicatif` bar on a
//! terminal, or as plain lines (a file, a pipe, a Slurm log) at most every 30 s and at each phase's
//! end, or not at all (`--progress auto|bar|lines|none`, [`set_mode`]).

use std::io::IsTerminal;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// How progress is shown (`--progress`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Mode {
    /// A bar when stderr is a terminal, lines otherwise.
    #[default]
    Auto,
    /// Always the bar (drawn only on a terminal).
    Bar,
    /// Plain lines: `[phase] epoch e/E, step s/T, loss x, elapsed …, eta …`.
    Lines,
    /// Nothing.
    None,
}

static MODE: OnceLock<Mode> = OnceLock::new();

/// Sets the process' progress mode (the binary's `--progress`; first call wins).
pub fn set_mode(mode: Mode) {
    let _ = MODE.set(mode);
}

/// Seconds between two progress lines: 30, or `NC_VQVAE_PROGRESS_SECONDS`.
fn line_interval() -> Duration {
    let seconds = std::env::var("NC_VQVAE_PROGRESS_SECONDS")
        .ok()
        .and_then(|s| s.parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s >= 0.0);
    Duration::from_secs_f64(seconds.unwrap_or(30.0))
}

fn effective_mode() -> Mode {
    match MODE.get().copied().unwrap_or_default() {
        Mode::Auto if std::io::stderr().is_terminal() => Mode::Bar,
        Mode::Auto => Mode::Lines,
        mode => mode,
    }
}

/// `1h02m03s`, `4m05s`, `7s`.
pub(crate) fn duration(seconds: f64) -> String {
    let s = seconds.max(0.0).round() as u64;
    match (s / 3600, s / 60 % 60, s % 60) {
        (0, 0, s) => format!("{s}s"),
        (0, m, s) => format!("{m}m{s:02}s"),
        (h, m, s) => format!("{h}h{m:02}m{s:02}s"),
    }
}

/// The plain-line reporter's state.
struct Lines {
    phase: String,
    every: Duration,
    start: Instant,
    last: Instant,
    total: u64,
    done_at_start: u64,
    done: u64,
    epoch: (usize, usize),
    loss: f32,
}

impl Lines {
    fn line(&self, end: &str) -> String {
        let elapsed = self.start.elapsed().as_secs_f64();
        let taken = self.done.saturating_sub(self.done_at_start);
        let eta = if taken > 0 && self.total > self.done {
            format!(", eta {}", duration(elapsed / taken as f64 * (self.total - self.done) as f64))
        } else {
            String::new()
        };
        format!(
            "[{}] epoch {}/{}, step {}/{}, loss {:.4}, elapsed {}{eta}{end}",
            self.phase,
            self.epoch.0,
            self.epoch.1,
            self.done,
            self.total,
            self.loss,
            duration(elapsed)
        )
    }
}

enum Shown {
    Bar(indicatif::ProgressBar),
    Lines(Box<Lines>),
    Hidden,
}

/// A step counter of one phase: a bar (`elapsed [====>   ] done/total steps, eta, epoch and
/// loss`), lines, or nothing, as the process' [`Mode`] says.
pub(crate) struct Bar {
    shown: Shown,
    phase: String,
}

impl Bar {
    /// The progress of `phase` (e.g. `stage 1`) when `show`, otherwise nothing.
    pub(crate) fn phase(show: bool, phase: &str) -> Self {
        let shown = match (show, effective_mode()) {
            (false, _) | (true, Mode::None) => Shown::Hidden,
            (true, Mode::Lines) => {
                let now = Instant::now();
                Shown::Lines(Box::new(Lines {
                    phase: phase.into(),
                    every: line_interval(),
                    start: now,
                    last: now,
                    total: 0,
                    done_at_start: 0,
                    done: 0,
                    epoch: (0, 0),
                    loss: f32::NAN,
                }))
            }
            (true, _) => Shown::Bar(indicatif::ProgressBar::new(0)),
        };
        Self { shown, phase: phase.into() }
    }
}

impl train::Progress for Bar {
    fn start(&mut self, total: u64, done: u64) {
        match &mut self.shown {
            Shown::Bar(bar) => {
                bar.set_style(
                    indicatif::ProgressStyle::with_template(
                        "{elapsed_precise} [{bar:30}] {pos}/{len} steps, eta {eta} {msg}",
                    )
                    .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
                );
                bar.set_length(total);
                bar.set_position(done);
            }
            Shown::Lines(lines) => {
                lines.total = total;
                lines.done = done;
                lines.done_at_start = done;
                lines.start = Instant::now();
                lines.last = lines.start;
                let resumed =
                    if done > 0 { format!(" (resumed at step {done})") } else { String::new() };
                eprintln!("[{}] {total} steps{resumed}", lines.phase);
            }
            Shown::Hidden => {}
        }
    }

    fn step(&mut self, epoch: usize, epochs: usize, loss: f32) {
        match &mut self.shown {
            Shown::Bar(bar) => {
                bar.set_message(format!("epoch {epoch}/{epochs} loss {loss:.4}"));
                bar.inc(1);
            }
            Shown::Lines(lines) => {
                lines.done += 1;
                lines.epoch = (epoch, epochs);
                lines.loss = loss;
                if lines.last.elapsed() >= lines.every && lines.done < lines.total {
                    lines.last = Instant::now();
                    eprintln!("{}", lines.line(""));
                }
            }
            Shown::Hidden => {}
        }
    }

    fn note(&mut self, text: &str) {
        match &self.shown {
            Shown::Bar(bar) => bar.println(format!("[{}] {text}", self.phase)),
            Shown::Lines(_) => eprintln!("[{}] {text}", self.phase),
            Shown::Hidden => {}
        }
    }

    fn finish(&mut self, ok: bool) {
        match &mut self.shown {
            Shown::Bar(bar) => {
                if ok {
                    bar.finish_and_clear()
                } else {
                    bar.abandon()
                }
            }
            Shown::Lines(lines) => {
                let end = if ok { ", done" } else { ", stopped" };
                eprintln!("{}", lines.line(end));
            }
            Shown::Hidden => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_as_a_clock() {
        assert_eq!(duration(7.4), "7s");
        assert_eq!(duration(245.0), "4m05s");
        assert_eq!(duration(3723.0), "1h02m03s");
        assert_eq!(duration(-1.0), "0s");
    }

    #[test]
    fn a_line_holds_phase_epoch_step_loss_elapsed_and_eta() {
        let start = Instant::now() - Duration::from_secs(20);
        let lines = Lines {
            phase: "stage 1".into(),
            every: Duration::ZERO,
            start,
            last: start,
            total: 400,
            done_at_start: 100,
            done: 200,
            epoch: (50, 200),
            loss: 0.25,
        };
        let line = lines.line("");
        // 100 steps in 20 s, 200 left: 40 s.
        assert_eq!(line, "[stage 1] epoch 50/200, step 200/400, loss 0.2500, elapsed 20s, eta 40s");
    }
}
