//! PNG plots with `plotters` (bitmap backend, the bundled DejaVu Sans Mono font, so no system
//! fonts are needed). Files are rendered to a temporary name and renamed into place.

use std::path::Path;

use plotters::prelude::*;

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
        let root = BitMapBackend::new(&tmp, (420 * cols as u32, 40 + 220 * rows as u32)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| err(&e))?;
        let root = root.titled(title, ("sans-serif", 20)).map_err(|e| err(&e))?;
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
}
