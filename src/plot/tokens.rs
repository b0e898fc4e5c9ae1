//! Series above their token grids (one colour per code).

use std::path::Path;

use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::*;

/// One series and its token grid, for [`token_grids`].
#[derive(Debug, Clone)]
pub(crate) struct TokenPanel {
    /// Caption above the panel.
    pub(crate) title: String,
    /// The series, drawn above its grid.
    pub(crate) series: Vec<f32>,
    /// Codes, row-major `(rows, tokens.len() / rows)`; row 0 is the lowest frequency band.
    pub(crate) tokens: Vec<usize>,
    /// Frequency bands (grid rows).
    pub(crate) rows: usize,
}

/// A colour per code: hues spread by the golden ratio so that neighbouring codes differ, two
/// lightness levels; and whether text on it should be white.
pub(crate) fn code_color(code: usize) -> (RGBColor, bool) {
    let hue = (code as f64 * 0.618_033_988_75).fract();
    let light = if code.is_multiple_of(2) { 0.42 } else { 0.68 };
    let (r, g, b) = HSLColor(hue, 0.7, light).rgb();
    (RGBColor(r, g, b), light < 0.5)
}

/// Draws each series above its token grid (time on x, frequency bands on y, one colour per code,
/// the code's number in its cell), `cols` panels per row.
///
/// Longer than most functions here (~95 lines) for the reason [`super::bar_row`] is: one
/// drawing closure whose steps (series chart, grid cells, labels) share the panel's areas.
pub(crate) fn token_grids(
    path: &Path,
    title: &str,
    cols: usize,
    panels: &[TokenPanel],
) -> Result<(), PlotError> {
    let cols = cols.max(1);
    let rows = panels.len().div_ceil(cols).max(1);
    render(path, (520 * cols as u32, 40 + 380 * rows as u32), title, |root| {
        let areas = root.split_evenly((rows, cols));
        for (panel, area) in panels.iter().zip(&areas) {
            let bands = panel.rows.max(1);
            let width = (panel.tokens.len() / bands).max(1);
            let area = area.titled(&panel.title, ("sans-serif", 15)).map_err(|e| e.to_string())?;
            let (top, bottom) = area.split_vertically(area.dim_in_pixel().1 * 2 / 5);
            let len = panel.series.len().max(2);
            let (y0, y1) = padded_range(panel.series.iter().map(|&v| v as f64));
            let mut chart = ChartBuilder::on(&top)
                .margin(6)
                .x_label_area_size(22)
                .y_label_area_size(56)
                .build_cartesian_2d(0f64..(len - 1) as f64, y0..y1)
                .map_err(|e| e.to_string())?;
            chart
                .configure_mesh()
                .disable_mesh()
                .x_labels(6)
                .y_labels(4)
                .x_label_formatter(&|x| tick_label(*x, true))
                .y_label_formatter(&|y| tick_label(*y, false))
                .label_style(("sans-serif", 12))
                .draw()
                .map_err(|e| e.to_string())?;
            let points = panel
                .series
                .iter()
                .enumerate()
                .filter(|(_, v)| v.is_finite())
                .map(|(i, &v)| (i as f64, v as f64));
            chart
                .draw_series(LineSeries::new(
                    points,
                    RGBColor(GREY.0, GREY.1, GREY.2).stroke_width(2),
                ))
                .map_err(|e| e.to_string())?;

            let mut grid = ChartBuilder::on(&bottom)
                .margin(6)
                .x_label_area_size(36)
                .y_label_area_size(56)
                .build_cartesian_2d(0f64..width as f64, 0f64..bands as f64)
                .map_err(|e| e.to_string())?;
            grid.configure_mesh()
                .disable_mesh()
                .x_desc("token (time)")
                .y_desc("frequency band")
                .x_labels((2 * width + 1).min(81))
                .y_labels(2 * bands + 1)
                // Labels at cell centres: the token index and the band index.
                .x_label_formatter(&|x| {
                    cell_at_centre(*x).map(|i| i.to_string()).unwrap_or_default()
                })
                .y_label_formatter(&|y| {
                    cell_at_centre(*y).map(|i| i.to_string()).unwrap_or_default()
                })
                .label_style(("sans-serif", 12))
                .axis_desc_style(("sans-serif", 13))
                .draw()
                .map_err(|e| e.to_string())?;
            let cells = panel.tokens.iter().enumerate().map(|(i, &code)| {
                let (r, c) = (i / width, i % width);
                Rectangle::new(
                    [(c as f64, r as f64), (c as f64 + 1.0, r as f64 + 1.0)],
                    code_color(code).0.filled(),
                )
            });
            grid.draw_series(cells).map_err(|e| e.to_string())?;
            let cell_px = bottom.dim_in_pixel().0 as f64 / width as f64;
            if cell_px >= 18.0 {
                let labels = panel.tokens.iter().enumerate().map(|(i, &code)| {
                    let (r, c) = (i / width, i % width);
                    let color = if code_color(code).1 { WHITE } else { BLACK };
                    Text::new(
                        code.to_string(),
                        (c as f64 + 0.5, r as f64 + 0.5),
                        ("sans-serif", 11)
                            .into_font()
                            .color(&color)
                            .pos(Pos::new(HPos::Center, VPos::Center)),
                    )
                });
                grid.draw_series(labels).map_err(|e| e.to_string())?;
            }
        }
        Ok(())
    })
}
