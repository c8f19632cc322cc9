//! Charts as server-side SVG: sizes and positions are attributes, colours come from the CSS, so
//! they need no script and no inline style. Each chart is a template of its own (`.svg`
//! templates escape what they print) rendered into the page.

use std::collections::HashMap;

use askama::Template;
use chrono::{TimeZone, Utc};

/// One bar: position and size in the chart's units, and its tooltip.
pub(crate) struct Bar {
    pub(crate) x: String,
    pub(crate) y: String,
    pub(crate) w: String,
    pub(crate) h: String,
    pub(crate) title: String,
}

/// A vertical line across the chart (e.g. a release seen for the first time), with its
/// tooltip.
pub(crate) struct Marker {
    pub(crate) x: String,
    pub(crate) title: String,
}

#[derive(Template)]
#[template(path = "bars.svg")]
pub(crate) struct Bars {
    pub(crate) width: u32,
    pub(crate) height: u32,
    pub(crate) class: &'static str,
    pub(crate) label: String,
    pub(crate) bars: Vec<Bar>,
    pub(crate) markers: Vec<Marker>,
}

impl Bars {
    /// Adds a marker at the start of bar `index` (of `count` bars), e.g. the bucket a release
    /// was first seen in.
    pub(crate) fn mark(&mut self, index: usize, count: usize, title: String) {
        let slot = f64::from(self.width) / count.max(1) as f64;
        self.markers.push(Marker {
            x: num(index as f64 * slot + 0.5),
            title,
        });
    }
}

fn num(v: f64) -> String {
    format!("{v:.1}")
}

/// A bar chart of `values` (tooltip, value) side by side, scaled to the largest value (a zero
/// value still shows a 1-unit baseline).
pub(crate) fn bars(
    values: &[(String, i64)],
    width: u32,
    height: u32,
    class: &'static str,
    label: String,
) -> Bars {
    let max = values.iter().map(|(_, v)| *v).max().unwrap_or(0).max(1) as f64;
    let n = values.len().max(1) as f64;
    let slot = f64::from(width) / n;
    let gap = if slot > 4.0 { 1.0 } else { 0.0 };
    let full = f64::from(height);
    let bars = values
        .iter()
        .enumerate()
        .map(|(i, (title, v))| {
            let h = ((*v as f64) / max * (full - 1.0)).max(1.0);
            Bar {
                x: num(i as f64 * slot),
                y: num(full - h),
                w: num((slot - gap).max(0.5)),
                h: num(h),
                title: title.clone(),
            }
        })
        .collect();
    Bars {
        width,
        height,
        class,
        label,
        bars,
        markers: Vec::new(),
    }
}

/// Counts per time bucket: `n` buckets of `step_ms` ending with the one holding `end_ms`,
/// from `counts` keyed by bucket start (multiples of `step_ms`); missing buckets are 0.
pub(crate) fn buckets(
    end_ms: i64,
    step_ms: i64,
    n: i64,
    counts: &HashMap<i64, i64>,
) -> Vec<(i64, i64)> {
    let last = end_ms.div_euclid(step_ms) * step_ms;
    (0..n)
        .map(|i| {
            let start = last - (n - 1 - i) * step_ms;
            (start, counts.get(&start).copied().unwrap_or(0))
        })
        .collect()
}

/// A bucket's start as the tooltips show it.
pub(crate) fn bucket_label(start_ms: i64) -> String {
    Utc.timestamp_millis_opt(start_ms)
        .single()
        .map(|t| t.format("%Y-%m-%d %H:%M UTC").to_string())
        .unwrap_or_default()
}

#[derive(Template)]
#[template(path = "line.svg")]
pub(crate) struct Line {
    pub(crate) width: u32,
    pub(crate) height: u32,
    pub(crate) label: String,
    /// `x,y x,y …` in the chart's units.
    pub(crate) points: String,
    pub(crate) x_first: String,
    pub(crate) x_last: String,
    pub(crate) y_max: String,
    pub(crate) dots: Vec<(String, String, String)>,
}

/// Room for axis labels inside the chart.
const PAD_X: f64 = 8.0;
const PAD_Y: f64 = 18.0;

/// A line through `points` (x = epoch milliseconds, y = value), in x order.
pub(crate) fn line(points: &mut [(i64, f64)], width: u32, height: u32, label: String) -> Line {
    points.sort_by_key(|p| p.0);
    let (x0, x1) = (
        points.first().map_or(0, |p| p.0),
        points.last().map_or(0, |p| p.0),
    );
    let y_lo = points.iter().map(|p| p.1).fold(f64::INFINITY, f64::min);
    let y_hi = points.iter().map(|p| p.1).fold(f64::NEG_INFINITY, f64::max);
    let (y_lo, y_hi) = if y_lo.is_finite() && y_hi.is_finite() {
        (y_lo.min(0.0), y_hi)
    } else {
        (0.0, 1.0)
    };
    let span_x = ((x1 - x0) as f64).max(1.0);
    let span_y = (y_hi - y_lo).max(f64::EPSILON);
    let (w, h) = (f64::from(width), f64::from(height));
    let project = |(x, y): (i64, f64)| {
        let px = PAD_X + (x - x0) as f64 / span_x * (w - 2.0 * PAD_X);
        let py = h - PAD_Y - (y - y_lo) / span_y * (h - 2.0 * PAD_Y);
        (px, py)
    };
    let mut text = String::new();
    let mut dots = Vec::new();
    for &(x, y) in points.iter() {
        let (px, py) = project((x, y));
        if !text.is_empty() {
            text.push(' ');
        }
        text.push_str(&format!("{},{}", num(px), num(py)));
        if points.len() <= 60 {
            dots.push((num(px), num(py), format!("{}: {y}", bucket_label(x))));
        }
    }
    Line {
        width,
        height,
        label,
        points: text,
        x_first: bucket_label(x0),
        x_last: bucket_label(x1),
        y_max: format!("{y_hi}"),
        dots,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bars_scale_to_the_largest_value() {
        let chart = bars(
            &[("a".into(), 0), ("b".into(), 5), ("c".into(), 10)],
            30,
            11,
            "spark",
            "x".into(),
        );
        let heights: Vec<_> = chart.bars.iter().map(|b| b.h.as_str()).collect();
        assert_eq!(heights, ["1.0", "5.0", "10.0"]);
        assert_eq!(chart.bars[2].y, "1.0");
        let svg = chart.render().unwrap();
        assert!(svg.contains("<title>c</title>"), "{svg}");
    }

    #[test]
    fn buckets_fill_gaps_with_zero() {
        let counts = HashMap::from([(7_200_000, 3)]);
        assert_eq!(
            buckets(7_300_000, 3_600_000, 3, &counts),
            [(0, 0), (3_600_000, 0), (7_200_000, 3)]
        );
    }

    #[test]
    fn tooltips_are_escaped() {
        let svg = bars(&[("<b>&".into(), 1)], 10, 10, "spark", "<x>".into())
            .render()
            .unwrap();
        assert!(
            svg.contains("&#60;b&#62;&#38;") || svg.contains("&lt;b&gt;&amp;"),
            "{svg}"
        );
        assert!(!svg.contains("<b>"));
    }
}
