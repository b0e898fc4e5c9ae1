//! Grouped bar charts.

use std::path::Path;

use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::*;

/// One group of bars of a [`BarPanel`]: `(legend name, colour, one value per category)`.
pub(crate) type BarGroup = (String, (u8, u8, u8), Vec<f64>);

/// One panel of grouped bars: for each category, one bar per group, with a legend.
#[derive(Debug, Clone)]
pub(crate) struct BarPanel {
    /// Caption above the panel.
    pub(crate) title: String,
    /// Label of the x axis.
    pub(crate) x_label: String,
    /// Label of the y axis.
    pub(crate) y_label: String,
    /// Category names along the x axis.
    pub(crate) categories: Vec<String>,
    /// `(legend name, colour, one value per category)`.
    pub(crate) groups: Vec<BarGroup>,
}

/// Draws grouped bar panels side by side (one row), each with labelled axes and a legend above the
/// chart.
///
/// Longer than most functions here (~90 lines): one closure given to `render` draws every panel in
/// plotters' order (area, legend strip, mesh, bars, value labels), and the steps share the
/// panel's area and ranges; split apart they would pass half a dozen plotters types around.
pub(crate) fn bar_row(path: &Path, title: &str, panels: &[BarPanel]) -> Result<(), PlotError> {
    let cols = panels.len().max(1);
    let widths: Vec<u32> = panels
        .iter()
        .map(|p| (120 + 40 * p.categories.len() * p.groups.len().max(1)).clamp(360, 1400) as u32)
        .collect();
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
            let top = panel
                .groups
                .iter()
                .flat_map(|g| g.2.iter())
                .copied()
                .filter(|v| v.is_finite())
                .fold(0.0f64, f64::max);
            // Headroom above the tallest bar for its value.
            let top = if top > 0.0 { top * 1.15 } else { 1.0 };
            let categories = panel.categories.clone();
            let named: Vec<(String, RGBColor, Mark)> = panel
                .groups
                .iter()
                .map(|(name, (r, g, b), _)| (name.clone(), RGBColor(*r, *g, *b), Mark::Box))
                .collect();
            let area = titled_with_legend(&area, &panel.title, &named)?;
            let mut chart = ChartBuilder::on(&area)
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
                    cell_at_centre(*x).and_then(|i| categories.get(i).cloned()).unwrap_or_default()
                })
                .y_labels(6)
                .y_label_formatter(&|y| tick_label(*y, false))
                .label_style(("sans-serif", 12))
                .axis_desc_style(("sans-serif", 13))
                .draw()
                .map_err(|e| e.to_string())?;
            let k = panel.groups.len().max(1) as f64;
            for (g, (_, (r, gr, b), values)) in panel.groups.iter().enumerate() {
                let color = RGBColor(*r, *gr, *b);
                let bars =
                    values.iter().enumerate().filter(|(_, v)| v.is_finite()).map(move |(c, &v)| {
                        let x0 = c as f64 + 0.1 + 0.8 * g as f64 / k;
                        Rectangle::new([(x0, 0.0), (x0 + 0.8 / k, v)], color.filled())
                    });
                chart.draw_series(bars).map_err(|e| e.to_string())?;
            }
            // The value above each bar, so the figure can be read without the table.
            for (g, (_, _, values)) in panel.groups.iter().enumerate() {
                for (c, &v) in values.iter().enumerate().filter(|(_, v)| v.is_finite()) {
                    let x = c as f64 + 0.1 + 0.8 * (g as f64 + 0.5) / k;
                    let text = if v.abs() >= 100.0 {
                        format!("{v:.0}")
                    } else if v.abs() >= 10.0 {
                        format!("{v:.1}")
                    } else {
                        format!("{v:.3}")
                    };
                    if n * panel.groups.len() <= 16 {
                        chart
                            .draw_series(std::iter::once(Text::new(
                                text,
                                (x, v),
                                TextStyle::from(("sans-serif", 10).into_font())
                                    .pos(Pos::new(HPos::Center, VPos::Bottom)),
                            )))
                            .map_err(|e| e.to_string())?;
                    }
                }
            }
        }
        Ok(())
    })
}
