//! The progress bar of the training commands: `train::Progress` drawn with `indicatif` on stderr.

/// A step counter bar (`elapsed [====>   ] done/total steps, eta, epoch and loss`), or nothing.
pub struct Bar(indicatif::ProgressBar);

impl Bar {
    /// A bar on stderr when `show`, otherwise a hidden one.
    pub fn new(show: bool) -> Self {
        Bar(if show { indicatif::ProgressBar::new(0) } else { indicatif::ProgressBar::hidden() })
    }
}

impl train::Progress for Bar {
    fn start(&mut self, total: u64, done: u64) {
        if self.0.is_hidden() {
            return;
        }
        self.0.set_style(
            indicatif::ProgressStyle::with_template("{elapsed_precise} [{bar:30}] {pos}/{len} steps, eta {eta} {msg}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        self.0.set_length(total);
        self.0.set_position(done);
    }

    fn step(&mut self, epoch: usize, epochs: usize, loss: f32) {
        self.0.set_message(format!("epoch {epoch}/{epochs} loss {loss:.4}"));
        self.0.inc(1);
    }

    fn finish(&mut self, ok: bool) {
        if ok { self.0.finish_and_clear() } else { self.0.abandon() }
    }
}
