//! Line plots: series in a grid of panels, curves with legends.

use std::path::Path;

use plotters::prelude::*;

use super::*;

/// One panel of line plots: a title and the series drawn in it.
#[derive(Debug, Clone)]
pub(crate) struct Panel {
    /// Caption above the panel.
    pub(crate) title: String,
    /// Series, each drawn as a thin line against its time index.
    pub(crate) series: Vec<Vec<f32>>,
    /// RGB colour of the lines.
    pub(crate) color: (u8, u8, u8),
}

/// Draws `panels` row by row in a grid of `cols` columns; panels in the same row share their y
/// range, so real and generated series of a class can be compared by eye.
pub(crate) fn panel_grid(
    path: &Path,
    title: &str,
    cols: usize,
    panels: &[Panel],
) -> Result<(), PlotError> {
    register_font();
    let err =
        |e: &dyn std::fmt::Display| PlotError { path: path.to_path_buf(), message: e.to_string() };
    let cols = cols.max(1);
    let rows = panels.len().div_ceil(cols).max(1);
    train::run_dir::write_atomic_with(path, |tmp| -> Result<(), PlotError> {
        let width = 420 * cols as u32;
        let root = BitMapBackend::new(tmp, (width, 40 + 220 * rows as u32)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| err(&e))?;
        let root =
            root.titled(title, ("sans-serif", title_size(title, width))).map_err(|e| err(&e))?;
        let areas = root.split_evenly((rows, cols));
        for (r, row) in panels.chunks(cols).enumerate() {
            let values = row
                .iter()
                .flat_map(|p| p.series.iter().flatten())
                .copied()
                .filter(|v| v.is_finite());
            let (lo, hi) = values
                .fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), v| (lo.min(v), hi.max(v)));
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
                    .x_label_formatter(&|x| tick_label(*x as f64, true))
                    .y_label_formatter(&|y| tick_label(*y as f64, false))
                    .label_style(("sans-serif", 12))
                    .draw()
                    .map_err(|e| err(&e))?;
                let (red, green, blue) = panel.color;
                let style = RGBColor(red, green, blue).mix(0.45).stroke_width(1);
                for s in &panel.series {
                    let points = s
                        .iter()
                        .enumerate()
                        .filter(|(_, v)| v.is_finite())
                        .map(|(i, &v)| (i as f32, v));
                    chart.draw_series(LineSeries::new(points, style)).map_err(|e| err(&e))?;
                }
            }
        }
        root.present().map_err(|e| err(&e))
    })
}

/// One named curve of a [`CurvePanel`]: `(x, y)` points drawn as a line.
#[derive(Debug, Clone)]
pub(crate) struct Curve {
    /// Legend entry.
    pub(crate) name: String,
    /// RGB colour.
    pub(crate) color: (u8, u8, u8),
    /// Points in drawing order; non-finite ones are skipped.
    pub(crate) points: Vec<(f64, f64)>,
}

/// A panel of named curves with axis labels and a legend.
#[derive(Debug, Clone)]
pub(crate) struct CurvePanel {
    /// Caption above the panel.
    pub(crate) title: String,
    /// Label of the x axis.
    pub(crate) x_label: String,
    /// Label of the y axis.
    pub(crate) y_label: String,
    /// The curves.
    pub(crate) curves: Vec<Curve>,
}

/// Draws curve panels in a grid of `cols` columns, each with labelled axes and a legend above the
/// chart. An x axis whose points are all whole numbers (epochs, time steps) is labelled in whole
/// numbers only.
pub(crate) fn curve_grid(
    path: &Path,
    title: &str,
    cols: usize,
    panels: &[CurvePanel],
) -> Result<(), PlotError> {
    let cols = cols.max(1);
    let rows = panels.len().div_ceil(cols).max(1);
    render(path, (520 * cols as u32, 40 + 320 * rows as u32), title, |root| {
        let areas = root.split_evenly((rows, cols));
        for (panel, area) in panels.iter().zip(&areas) {
            let (x0, x1) =
                padded_range(panel.curves.iter().flat_map(|c| c.points.iter().map(|p| p.0)));
            let (y0, y1) =
                padded_range(panel.curves.iter().flat_map(|c| c.points.iter().map(|p| p.1)));
            let integral =
                all_integral(panel.curves.iter().flat_map(|c| c.points.iter().map(|p| p.0)));
            let named: Vec<(String, RGBColor, Mark)> = panel
                .curves
                .iter()
                .filter(|c| !c.name.is_empty())
                .map(|c| (c.name.clone(), RGBColor(c.color.0, c.color.1, c.color.2), Mark::Line))
                .collect();
            let area = titled_with_legend(area, &panel.title, &named)?;
            let mut chart = ChartBuilder::on(&area)
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
                .x_label_formatter(&|x| tick_label(*x, integral))
                .y_label_formatter(&|y| tick_label(*y, false))
                .label_style(("sans-serif", 12))
                .axis_desc_style(("sans-serif", 13))
                .draw()
                .map_err(|e| e.to_string())?;
            for curve in &panel.curves {
                let (r, g, b) = curve.color;
                let points: Vec<(f64, f64)> = curve
                    .points
                    .iter()
                    .copied()
                    .filter(|(x, y)| x.is_finite() && y.is_finite())
                    .collect();
                chart
                    .draw_series(LineSeries::new(points, RGBColor(r, g, b).stroke_width(2)))
                    .map_err(|e| e.to_string())?;
            }
        }
        Ok(())
    })
}
