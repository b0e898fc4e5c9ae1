//! PNG plots with `plotters` (bitmap backend, the bundled DejaVu Sans Mono font, so no system
//! fonts are needed). Files are rendered to a temporary name and renamed into place.

use std::path::Path;

use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

/// Plotting failed.
#[derive(Debug, thiserror::Error)]
#[error("{path}: cannot draw the plot: {message}")]
pub struct PlotError {
    /// The file.
    pub path: std::path::PathBuf,
    /// The cause.
    pub message: String,
}

static FONT: &[u8] = include_bytes!("../assets/fonts/DejaVuSansMono.ttf");

fn register_font() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // The bytes are a valid TrueType font compiled into the binary; a failure here would only
        // mean text is not drawn, which `draw` reports as an error.
        let _ = plotters::style::register_font("sans-serif", FontStyle::Normal, FONT);
    });
}

/// One panel of line plots: a title and the series drawn in it.
#[derive(Debug, Clone)]
pub struct Panel {
    /// Caption above the panel.
    pub title: String,
    /// Series, each drawn as a thin line against its time index.
    pub series: Vec<Vec<f32>>,
    /// RGB colour of the lines.
    pub color: (u8, u8, u8),
}

/// A title font size (at most 20 px) at which `title` fits in `width` pixels; the bundled font's
/// glyphs are about 0.62 of the size wide.
fn title_size(title: &str, width: u32) -> f64 {
    let chars = title.chars().count().max(1) as f64;
    (0.95 * width as f64 / (0.62 * chars)).clamp(10.0, 20.0)
}

/// Draws `panels` row by row in a grid of `cols` columns; panels in the same row share their y
/// range, so real and generated series of a class can be compared by eye.
pub fn panel_grid(path: &Path, title: &str, cols: usize, panels: &[Panel]) -> Result<(), PlotError> {
    register_font();
    let err = |e: &dyn std::fmt::Display| PlotError { path: path.to_path_buf(), message: e.to_string() };
    let cols = cols.max(1);
    let rows = panels.len().div_ceil(cols).max(1);
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("plot.png");
    let tmp = path.with_file_name(format!(".{name}.tmp.png"));
    {
        let width = 420 * cols as u32;
        let root = BitMapBackend::new(&tmp, (width, 40 + 220 * rows as u32)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| err(&e))?;
        let root = root.titled(title, ("sans-serif", title_size(title, width))).map_err(|e| err(&e))?;
        let areas = root.split_evenly((rows, cols));
        for (r, row) in panels.chunks(cols).enumerate() {
            let values = row.iter().flat_map(|p| p.series.iter().flatten()).copied().filter(|v| v.is_finite());
            let (lo, hi) = values.fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), v| (lo.min(v), hi.max(v)));
            let (lo, hi) = if lo.is_finite() && hi > lo { (lo, hi) } else { (-1.0, 1.0) };
            let pad = 0.05 * (hi - lo);
            for (c, panel) in row.iter().enumerate() {
                let len = panel.series.iter().map(Vec::len).max().unwrap_or(1).max(2);
                let mut chart = ChartBuilder::on(&areas[r * cols + c])
                    .caption(&panel.title, ("sans-serif", 14))
                    .margin(6)
                    .x_label_area_size(22)
                    .y_label_area_size(44)
                    .build_cartesian_2d(0f32..(len - 1) as f32, (lo - pad)..(hi + pad))
                    .map_err(|e| err(&e))?;
                chart
                    .configure_mesh()
                    .disable_mesh()
                    .x_labels(5)
                    .y_labels(5)
                    .label_style(("sans-serif", 11))
                    .draw()
                    .map_err(|e| err(&e))?;
                let (red, green, blue) = panel.color;
                let style = RGBColor(red, green, blue).mix(0.45).stroke_width(1);
                for s in &panel.series {
                    let points = s.iter().enumerate().filter(|(_, v)| v.is_finite()).map(|(i, &v)| (i as f32, v));
                    chart.draw_series(LineSeries::new(points, style)).map_err(|e| err(&e))?;
                }
            }
        }
        root.present().map_err(|e| err(&e))?;
    }
    std::fs::rename(&tmp, path).map_err(|e| err(&e))
}

/// Colours used for the two models of a report (and any other pair of named curves).
pub const BLUE: (u8, u8, u8) = (30, 90, 200);
/// See [`BLUE`].
pub const ORANGE: (u8, u8, u8) = (220, 80, 30);
/// A third colour (e.g. the real series next to two reconstructions).
pub const GREY: (u8, u8, u8) = (90, 90, 90);

/// One named curve of a [`CurvePanel`]: `(x, y)` points drawn as a line.
#[derive(Debug, Clone)]
pub struct Curve {
    /// Legend entry.
    pub name: String,
    /// RGB colour.
    pub color: (u8, u8, u8),
    /// Points in drawing order; non-finite ones are skipped.
    pub points: Vec<(f64, f64)>,
}

/// A panel of named curves with axis labels and a legend.
#[derive(Debug, Clone)]
pub struct CurvePanel {
    /// Caption above the panel.
    pub title: String,
    /// Label of the x axis.
    pub x_label: String,
    /// Label of the y axis.
    pub y_label: String,
    /// The curves.
    pub curves: Vec<Curve>,
}

/// One panel of grouped bars: for each category, one bar per group, with a legend.
#[derive(Debug, Clone)]
pub struct BarPanel {
    /// Caption above the panel.
    pub title: String,
    /// Label of the x axis.
    pub x_label: String,
    /// Label of the y axis.
    pub y_label: String,
    /// Category names along the x axis.
    pub categories: Vec<String>,
    /// `(legend name, colour, one value per category)`.
    pub groups: Vec<(String, (u8, u8, u8), Vec<f64>)>,
}

/// Renders `draw` into the PNG `path` of `size` pixels under `title`, atomically.
fn render(
    path: &Path,
    size: (u32, u32),
    title: &str,
    draw: impl FnOnce(&DrawingArea<BitMapBackend<'_>, plotters::coord::Shift>) -> Result<(), String>,
) -> Result<(), PlotError> {
    register_font();
    let err = |message: String| PlotError { path: path.to_path_buf(), message };
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("plot.png");
    let tmp = path.with_file_name(format!(".{name}.tmp.png"));
    {
        let root = BitMapBackend::new(&tmp, size).into_drawing_area();
        root.fill(&WHITE).map_err(|e| err(e.to_string()))?;
        let root = root.titled(title, ("sans-serif", 20)).map_err(|e| err(e.to_string()))?;
        draw(&root).map_err(err)?;
        root.present().map_err(|e| err(e.to_string()))?;
    }
    std::fs::rename(&tmp, path).map_err(|e| err(e.to_string()))
}

/// The finite range of `values` with 5 % padding (a unit range around a constant).
fn padded_range(values: impl Iterator<Item = f64>) -> (f64, f64) {
    let (lo, hi) = values.filter(|v| v.is_finite()).fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| (lo.min(v), hi.max(v)));
    if !lo.is_finite() {
        return (0.0, 1.0);
    }
    if hi - lo < 1e-12 {
        return (lo - 0.5, hi + 0.5);
    }
    let pad = 0.05 * (hi - lo);
    (lo - pad, hi + pad)
}

/// The legend of a chart's labelled series, upper right on a translucent white box.
fn draw_legend<'a, DB: DrawingBackend + 'a>(chart: &mut ChartContext<'a, DB, Cartesian2d<plotters::coord::types::RangedCoordf64, plotters::coord::types::RangedCoordf64>>) -> Result<(), String> {
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(RGBColor(180, 180, 180))
        .label_font(("sans-serif", 12))
        .position(SeriesLabelPosition::UpperRight)
        .draw()
        .map_err(|e| e.to_string())
}

/// Draws curve panels in a grid of `cols` columns, each with labelled axes and a legend.
pub fn curve_grid(path: &Path, title: &str, cols: usize, panels: &[CurvePanel]) -> Result<(), PlotError> {
    let cols = cols.max(1);
    let rows = panels.len().div_ceil(cols).max(1);
    render(path, (520 * cols as u32, 40 + 300 * rows as u32), title, |root| {
        let areas = root.split_evenly((rows, cols));
        for (panel, area) in panels.iter().zip(&areas) {
            let (x0, x1) = padded_range(panel.curves.iter().flat_map(|c| c.points.iter().map(|p| p.0)));
            let (y0, y1) = padded_range(panel.curves.iter().flat_map(|c| c.points.iter().map(|p| p.1)));
            let mut chart = ChartBuilder::on(area)
                .caption(&panel.title, ("sans-serif", 15))
                .margin(8)
                .x_label_area_size(36)
                .y_label_area_size(56)
                .build_cartesian_2d(x0..x1, y0..y1)
                .map_err(|e| e.to_string())?;
            chart
                .configure_mesh()
                .light_line_style(RGBColor(235, 235, 235))
                .x_desc(&panel.x_label)
                .y_desc(&panel.y_label)
                .x_labels(6)
                .y_labels(6)
                .label_style(("sans-serif", 11))
                .axis_desc_style(("sans-serif", 13))
                .draw()
                .map_err(|e| e.to_string())?;
            for curve in &panel.curves {
                let (r, g, b) = curve.color;
                let color = RGBColor(r, g, b);
                let points: Vec<(f64, f64)> = curve.points.iter().copied().filter(|(x, y)| x.is_finite() && y.is_finite()).collect();
                chart
                    .draw_series(LineSeries::new(points, color.stroke_width(2)))
                    .map_err(|e| e.to_string())?
                    .label(curve.name.clone())
                    .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2)));
            }
            if panel.curves.iter().any(|c| !c.name.is_empty()) {
                draw_legend(&mut chart)?;
            }
        }
        Ok(())
    })
}

/// Draws grouped bar panels side by side (one row), each with labelled axes and a legend.
pub fn bar_row(path: &Path, title: &str, panels: &[BarPanel]) -> Result<(), PlotError> {
    let cols = panels.len().max(1);
    let widths: Vec<u32> = panels.iter().map(|p| (120 + 40 * p.categories.len() * p.groups.len().max(1)).clamp(360, 1400) as u32).collect();
    render(path, (widths.iter().sum::<u32>().max(400), 380), title, |root| {
        let mut rest = root.clone();
        for (i, panel) in panels.iter().enumerate() {
            let area = if i + 1 < cols {
                let (left, right) = rest.split_horizontally(widths[i]);
                rest = right;
                left
            } else {
                rest.clone()
            };
            let n = panel.categories.len().max(1);
            let top = panel.groups.iter().flat_map(|g| g.2.iter()).copied().filter(|v| v.is_finite()).fold(0.0f64, f64::max);
            // Headroom above the tallest bar for its value and the legend.
            let top = if top > 0.0 { top * 1.5 } else { 1.0 };
            let categories = panel.categories.clone();
            let mut chart = ChartBuilder::on(&area)
                .caption(&panel.title, ("sans-serif", 15))
                .margin(8)
                .x_label_area_size(40)
                .y_label_area_size(56)
                .build_cartesian_2d(0f64..n as f64, 0f64..top)
                .map_err(|e| e.to_string())?;
            chart
                .configure_mesh()
                .disable_x_mesh()
                .light_line_style(WHITE)
                .x_desc(&panel.x_label)
                .y_desc(&panel.y_label)
                .x_labels(n.min(40) * 2 + 1)
                .x_label_formatter(&|x| {
                    let i = x.floor() as usize;
                    let centre = (x - x.floor() - 0.5).abs() < 1e-6;
                    if centre { categories.get(i).cloned().unwrap_or_default() } else { String::new() }
                })
                .y_labels(6)
                .label_style(("sans-serif", 11))
                .axis_desc_style(("sans-serif", 13))
                .draw()
                .map_err(|e| e.to_string())?;
            let k = panel.groups.len().max(1) as f64;
            for (g, (name, (r, gr, b), values)) in panel.groups.iter().enumerate() {
                let color = RGBColor(*r, *gr, *b);
                let bars = values.iter().enumerate().filter(|(_, v)| v.is_finite()).map(move |(c, &v)| {
                    let x0 = c as f64 + 0.1 + 0.8 * g as f64 / k;
                    Rectangle::new([(x0, 0.0), (x0 + 0.8 / k, v)], color.filled())
                });
                chart
                    .draw_series(bars)
                    .map_err(|e| e.to_string())?
                    .label(name.clone())
                    .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 12, y + 5)], color.filled()));
            }
            draw_legend(&mut chart)?;
            // The value above each bar, so the figure can be read without the table.
            for (g, (_, _, values)) in panel.groups.iter().enumerate() {
                for (c, &v) in values.iter().enumerate().filter(|(_, v)| v.is_finite()) {
                    let x = c as f64 + 0.1 + 0.8 * (g as f64 + 0.5) / k;
                    let text = if v.abs() >= 100.0 { format!("{v:.0}") } else if v.abs() >= 10.0 { format!("{v:.1}") } else { format!("{v:.3}") };
                    if n * panel.groups.len() <= 16 {
                        chart
                            .draw_series(std::iter::once(Text::new(text, (x, v), TextStyle::from(("sans-serif", 10).into_font()).pos(Pos::new(HPos::Center, VPos::Bottom)))))
                            .map_err(|e| e.to_string())?;
                    }
                }
            }
        }
        Ok(())
    })
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
            Panel { title: "class 1: real".into(), series: vec![wave(0.1), wave(0.2)], color: (30, 90, 200) },
            Panel { title: "class 1: generated".into(), series: vec![wave(0.15)], color: (220, 80, 30) },
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
                Curve { name: "baseline".into(), color: BLUE, points: (1..=20).map(|e| (e as f64, 1.0 / e as f64)).collect() },
                Curve { name: "NC-VQVAE".into(), color: ORANGE, points: (1..=20).map(|e| (e as f64, 1.5 / e as f64)).collect() },
            ],
        };
        curve_grid(&curves, "curves", 2, &[panel.clone(), CurvePanel { curves: vec![], ..panel }]).unwrap();
        assert!(pixels_of(&curves, BLUE) > 200 && pixels_of(&curves, ORANGE) > 200, "both curves drawn");

        let bars = tmp.path().join("bars.png");
        let panel = BarPanel {
            title: "probes".into(),
            x_label: "probe".into(),
            y_label: "accuracy".into(),
            categories: vec!["KNN".into(), "SVM".into()],
            groups: vec![("baseline".into(), BLUE, vec![0.5, 0.6]), ("NC-VQVAE".into(), ORANGE, vec![0.7, 0.9])],
        };
        bar_row(&bars, "bars", &[panel.clone(), BarPanel { groups: vec![("one".into(), GREY, vec![f64::NAN, 2.0])], ..panel }]).unwrap();
        let (blue, orange) = (pixels_of(&bars, BLUE), pixels_of(&bars, ORANGE));
        assert!(orange > blue && blue > 1000, "bar areas follow the values: {blue} vs {orange}");
        assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 2, "no temporary files left");
    }
}
