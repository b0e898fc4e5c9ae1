//! PNG plots with `plotters` (bitmap backend, the bundled DejaVu Sans Mono font, so no system
//! fonts are needed). Files are rendered to a temporary name and renamed into place.

mod bars;
mod series;
mod tokens;

use std::path::Path;

use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

pub(crate) use bars::{BarPanel, bar_row};
pub(crate) use series::{Curve, CurvePanel, Panel, curve_grid, panel_grid};
#[cfg(test)]
use tokens::code_color;
pub(crate) use tokens::{TokenPanel, token_grids};

/// Plotting failed.
#[derive(Debug, thiserror::Error)]
#[error("{path}: cannot draw the plot: {message}")]
pub struct PlotError {
    /// The file.
    pub(crate) path: std::path::PathBuf,
    /// The cause.
    pub(crate) message: String,
}

impl From<train::run_dir::RunDirError> for PlotError {
    fn from(e: train::run_dir::RunDirError) -> Self {
        use train::run_dir::RunDirError as E;
        let (path, message) = match e {
            E::Io { path, source } | E::Unwritable { path, source } => (path, source.to_string()),
            E::Corrupt { path, message } => (path, message),
        };
        Self { path, message }
    }
}

static FONT: &[u8] = include_bytes!("../../assets/fonts/DejaVuSansMono.ttf");

fn register_font() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // The bytes are a valid TrueType font compiled into the binary; a failure here would only
        // mean text is not drawn, which `draw` reports as an error.
        let _ = plotters::style::register_font("sans-serif", FontStyle::Normal, FONT);
    });
}

/// A title font size (at most 20 px) at which `title` fits in `width` pixels; the bundled font's
/// glyphs are about 0.62 of the size wide.
fn title_size(title: &str, width: u32) -> f64 {
    let chars = title.chars().count().max(1) as f64;
    (0.95 * width as f64 / (0.62 * chars)).clamp(10.0, 20.0)
}

/// A tick label with a plain '.': whole numbers without decimals ("2", not "2.0"), others with the
/// fewest decimals (at most 3) that show them, very small or large ones in exponent form. On an
/// `integral` axis (epochs, time steps) ticks between whole numbers get no label.
pub(crate) fn tick_label(v: f64, integral: bool) -> String {
    let r = v.round();
    if (v - r).abs() <= 1e-9 * v.abs().max(1.0) {
        return if r.abs() < 1e15 { format!("{}", r as i64) } else { format!("{r:.2e}") };
    }
    if integral {
        return String::new();
    }
    if v.abs() < 1e-3 || v.abs() >= 1e6 {
        return format!("{v:.1e}");
    }
    let mut text = format!("{v:.3}");
    while text.ends_with('0') {
        text.pop();
    }
    if text.ends_with('.') {
        text.pop();
    }
    text
}

/// Whether every coordinate is a whole number (the axis counts epochs, steps or ranks).
fn all_integral(values: impl Iterator<Item = f64>) -> bool {
    let mut any = false;
    for v in values.filter(|v| v.is_finite()) {
        if v.fract() != 0.0 {
            return false;
        }
        any = true;
    }
    any
}

/// How a legend entry is marked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mark {
    Line,
    Box,
}

/// Height of the legend strip above a chart.
const LEGEND_HEIGHT: u32 = 20;

/// Draws legend entries in one centred row across `strip` (a band above the chart, so the legend
/// never covers data).
fn legend_strip(
    strip: &DrawingArea<BitMapBackend<'_>, plotters::coord::Shift>,
    entries: &[(String, RGBColor, Mark)],
) -> Result<(), String> {
    let font =
        TextStyle::from(("sans-serif", 12).into_font()).pos(Pos::new(HPos::Left, VPos::Center));
    let widths: Vec<i32> = entries
        .iter()
        .map(|(name, _, _)| {
            strip
                .estimate_text_size(name, &font)
                .map(|(w, _)| w as i32 + 22 + 14)
                .map_err(|e| e.to_string())
        })
        .collect::<Result<_, _>>()?;
    let (width, height) = strip.dim_in_pixel();
    let mut x = ((width as i32 - widths.iter().sum::<i32>()) / 2).max(4);
    let y = height as i32 / 2;
    for ((name, color, mark), w) in entries.iter().zip(widths) {
        match mark {
            Mark::Line => {
                strip.draw(&PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2)))
            }
            Mark::Box => {
                strip.draw(&Rectangle::new([(x + 3, y - 5), (x + 15, y + 5)], color.filled()))
            }
        }
        .map_err(|e| e.to_string())?;
        strip
            .draw(&Text::new(name.clone(), (x + 22, y), font.clone()))
            .map_err(|e| e.to_string())?;
        x += w;
    }
    Ok(())
}

/// Writes `title` across the top of `area`, the legend `entries` in a strip under it (above the
/// chart, so it never covers data), and returns the rest of the area for the chart.
fn titled_with_legend<'a>(
    area: &DrawingArea<BitMapBackend<'a>, plotters::coord::Shift>,
    title: &str,
    entries: &[(String, RGBColor, Mark)],
) -> Result<DrawingArea<BitMapBackend<'a>, plotters::coord::Shift>, String> {
    let area = area.titled(title, ("sans-serif", 15)).map_err(|e| e.to_string())?;
    let (strip, chart) = area.split_vertically(LEGEND_HEIGHT);
    legend_strip(&strip, entries)?;
    Ok(chart)
}

/// The index of the cell whose centre is at `v` (a tick at `k + 0.5`), for labelling cells rather
/// than their edges.
fn cell_at_centre(v: f64) -> Option<usize> {
    ((v - v.floor() - 0.5).abs() < 1e-6).then(|| v.floor() as usize)
}

/// Colours used for the two models of a report (and any other pair of named curves).
pub(crate) const BLUE: (u8, u8, u8) = (30, 90, 200);
/// See [`BLUE`].
pub(crate) const ORANGE: (u8, u8, u8) = (220, 80, 30);
/// A third colour (e.g. the real series next to two reconstructions).
pub(crate) const GREY: (u8, u8, u8) = (90, 90, 90);

/// Renders `draw` into the PNG `path` of `size` pixels under `title`, atomically.
fn render(
    path: &Path,
    size: (u32, u32),
    title: &str,
    draw: impl FnOnce(&DrawingArea<BitMapBackend<'_>, plotters::coord::Shift>) -> Result<(), String>,
) -> Result<(), PlotError> {
    register_font();
    let err = |message: String| PlotError { path: path.to_path_buf(), message };
    train::run_dir::write_atomic_with(path, |tmp| -> Result<(), PlotError> {
        let root = BitMapBackend::new(tmp, size).into_drawing_area();
        root.fill(&WHITE).map_err(|e| err(e.to_string()))?;
        let root = root.titled(title, ("sans-serif", 20)).map_err(|e| err(e.to_string()))?;
        draw(&root).map_err(err)?;
        root.present().map_err(|e| err(e.to_string()))
    })
}

/// The finite range of `values` with 5 % padding (a unit range around a constant).
fn padded_range(values: impl Iterator<Item = f64>) -> (f64, f64) {
    let (lo, hi) = values
        .filter(|v| v.is_finite())
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| (lo.min(v), hi.max(v)));
    if !lo.is_finite() {
        return (0.0, 1.0);
    }
    if hi - lo < 1e-12 {
        return (lo - 0.5, hi + 0.5);
    }
    let pad = 0.05 * (hi - lo);
    (lo - pad, hi + pad)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grid_is_written_as_a_png() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("grid.png");
        let wave = |f: f32| (0..50).map(|i| (i as f32 * f).sin()).collect::<Vec<_>>();
        let panels = vec![
            Panel {
                title: "class 1: real".into(),
                series: vec![wave(0.1), wave(0.2)],
                color: (30, 90, 200),
            },
            Panel {
                title: "class 1: generated".into(),
                series: vec![wave(0.15)],
                color: (220, 80, 30),
            },
            Panel { title: "empty".into(), series: vec![], color: (0, 0, 0) },
        ];
        panel_grid(&path, "test", 2, &panels).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "a PNG file");
        assert!(bytes.len() > 2000, "with content ({} bytes)", bytes.len());
        assert!(std::fs::read_dir(tmp.path()).unwrap().count() == 1, "no temporary file left");
    }

    /// Decodes a PNG written here and counts pixels of `color` (to check that data was drawn).
    fn pixels_of(path: &Path, color: (u8, u8, u8)) -> usize {
        let img = image::open(path).unwrap().to_rgb8();
        img.pixels().filter(|p| (p[0], p[1], p[2]) == color).count()
    }

    #[test]
    fn curves_and_bars_draw_their_data() {
        let tmp = tempfile::tempdir().unwrap();
        let curves = tmp.path().join("curves.png");
        let panel = CurvePanel {
            title: "loss".into(),
            x_label: "epoch".into(),
            y_label: "MSE".into(),
            curves: vec![
                Curve {
                    name: "baseline".into(),
                    color: BLUE,
                    points: (1..=20).map(|e| (e as f64, 1.0 / e as f64)).collect(),
                },
                Curve {
                    name: "NC-VQVAE".into(),
                    color: ORANGE,
                    points: (1..=20).map(|e| (e as f64, 1.5 / e as f64)).collect(),
                },
            ],
        };
        curve_grid(&curves, "curves", 2, &[panel.clone(), CurvePanel { curves: vec![], ..panel }])
            .unwrap();
        assert!(
            pixels_of(&curves, BLUE) > 200 && pixels_of(&curves, ORANGE) > 200,
            "both curves drawn"
        );

        let bars = tmp.path().join("bars.png");
        let panel = BarPanel {
            title: "probes".into(),
            x_label: "probe".into(),
            y_label: "accuracy".into(),
            categories: vec!["KNN".into(), "SVM".into()],
            groups: vec![
                ("baseline".into(), BLUE, vec![0.5, 0.6]),
                ("NC-VQVAE".into(), ORANGE, vec![0.7, 0.9]),
            ],
        };
        bar_row(
            &bars,
            "bars",
            &[
                panel.clone(),
                BarPanel { groups: vec![("one".into(), GREY, vec![f64::NAN, 2.0])], ..panel },
            ],
        )
        .unwrap();
        let (blue, orange) = (pixels_of(&bars, BLUE), pixels_of(&bars, ORANGE));
        assert!(orange > blue && blue > 1000, "bar areas follow the values: {blue} vs {orange}");
        assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 2, "no temporary files left");
    }

    #[test]
    fn tick_labels_use_a_plain_point_and_whole_numbers_where_the_axis_is_integral() {
        assert_eq!(tick_label(2.0, true), "2");
        assert_eq!(tick_label(2.0, false), "2");
        assert_eq!(tick_label(-1.0, false), "-1");
        assert_eq!(tick_label(2.5, true), "", "no label between epochs");
        assert_eq!(tick_label(2.5, false), "2.5");
        assert_eq!(tick_label(0.125, false), "0.125");
        assert_eq!(tick_label(0.1 + 0.2, false), "0.3");
        assert_eq!(tick_label(0.00025, false), "2.5e-4");
        assert!(all_integral([1.0, 2.0, 30.0].into_iter()));
        assert!(!all_integral([1.0, 2.5].into_iter()));
        assert!(!all_integral(std::iter::empty()));
    }

    #[test]
    fn the_legend_sits_above_the_data() {
        // Curves that fill the upper right corner, where a legend inside the chart would sit: every
        // pixel of the legend's colours inside the chart belongs to a curve, none is covered.
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("legend.png");
        let flat = |y: f64| (0..=40).map(|x| (x as f64, y)).collect::<Vec<_>>();
        let panel = CurvePanel {
            title: "t".into(),
            x_label: "epoch".into(),
            y_label: "v".into(),
            curves: vec![
                Curve { name: "a long legend entry".into(), color: BLUE, points: flat(1.0) },
                Curve { name: "b".into(), color: ORANGE, points: flat(0.99) },
            ],
        };
        curve_grid(&path, "legend", 1, &[panel]).unwrap();
        let img = image::open(&path).unwrap().to_rgb8();
        for color in [BLUE, ORANGE] {
            // Rows holding pixels of exactly this colour, grouped into bands of adjacent rows: the
            // legend mark (above the chart) and the curve (a 2 px line across the chart).
            let mut rows: Vec<(u32, usize)> = Vec::new();
            for (_, y, p) in img.enumerate_pixels() {
                if (p[0], p[1], p[2]) == color {
                    match rows.last_mut() {
                        Some((r, n)) if *r == y => *n += 1,
                        _ => rows.push((y, 1)),
                    }
                }
            }
            let mut bands: Vec<(u32, u32, usize)> = Vec::new();
            for (y, n) in rows {
                match bands.last_mut() {
                    Some((_, hi, count)) if y == *hi + 1 => {
                        *hi = y;
                        *count += n;
                    }
                    _ => bands.push((y, y, n)),
                }
            }
            assert_eq!(bands.len(), 2, "{color:?}: legend and curve apart: {bands:?}");
            let (legend, curve) = (bands[0], bands[1]);
            assert!(legend.1 < curve.0, "{color:?}: the legend is above the curve");
            assert!(
                legend.0 < 40 + 30 + LEGEND_HEIGHT,
                "{color:?}: the legend is in the strip under the titles: {bands:?}"
            );
            // Nothing covers the curve: its line runs the whole chart width (≈ 440 px, 2 px thick).
            assert!(curve.2 >= 2 * 400, "{color:?}: the curve is drawn in full: {bands:?}");
        }
    }

    #[test]
    fn token_grids_colour_each_cell_by_its_code() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("tokens.png");
        let panel = TokenPanel {
            title: "series 0".into(),
            series: (0..64).map(|i| (i as f32 * 0.2).sin()).collect(),
            tokens: (0..40).map(|i| i % 4).collect(),
            rows: 5,
        };
        token_grids(&path, "tokens", 2, &[panel]).unwrap();
        let img = image::open(&path).unwrap().to_rgb8();
        for code in 0..4 {
            let (c, _) = code_color(code);
            let n = img.pixels().filter(|p| (p[0], p[1], p[2]) == (c.0, c.1, c.2)).count();
            assert!(n > 500, "code {code}: {n} pixels");
        }
        let (c, _) = code_color(4);
        assert_eq!(
            img.pixels().filter(|p| (p[0], p[1], p[2]) == (c.0, c.1, c.2)).count(),
            0,
            "an unused code has no cells"
        );
    }
}
