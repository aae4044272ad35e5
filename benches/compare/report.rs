//! Markdown tables and SVG bar charts for the comparison.

use std::fmt::Write as _;
use std::path::Path;

use plotters::prelude::*;

/// One scenario's results.
#[derive(Clone)]
pub struct Section {
    pub title: String,
    /// What was run and how to read it.
    pub notes: Vec<String>,
    pub headers: Vec<String>,
    pub rows: Vec<Vec<String>>,
    pub chart: Option<Chart>,
}

#[derive(Clone)]
pub struct Chart {
    /// File name under the plots directory.
    pub file: String,
    pub caption: String,
    /// Bars, one per tool (or tool and setting).
    pub bars: Vec<(String, f64)>,
}

impl Section {
    pub fn new(title: impl Into<String>, headers: &[&str]) -> Self {
        Self {
            title: title.into(),
            notes: Vec::new(),
            headers: headers.iter().map(|h| h.to_string()).collect(),
            rows: Vec::new(),
            chart: None,
        }
    }

    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    /// A row for a tool that could not run this scenario.
    pub fn skipped(&mut self, tool: &str, why: &str) {
        let mut cells = vec![tool.to_owned(), format!("not run: {why}")];
        cells.resize(self.headers.len(), String::new());
        self.rows.push(cells);
    }

    pub fn markdown(&self, plots_dir: Option<&str>) -> String {
        let mut s = format!("## {}\n\n", self.title);
        for n in &self.notes {
            let _ = writeln!(s, "{n}");
        }
        if !self.notes.is_empty() {
            s.push('\n');
        }
        let _ = writeln!(s, "| {} |", self.headers.join(" | "));
        let _ = writeln!(s, "|{}", "---|".repeat(self.headers.len()));
        for r in &self.rows {
            let _ = writeln!(s, "| {} |", r.join(" | "));
        }
        if let (Some(c), Some(dir)) = (&self.chart, plots_dir) {
            let _ = write!(s, "\n![{}]({dir}/{})\n", c.caption, c.file);
        }
        s.push('\n');
        s
    }
}

/// Puts each of `new`'s sections (its `## title` line first) into `old`,
/// the generated tables of a results file: in place of the section of the
/// same title, or after the last one. Everything else in `old` is kept.
pub fn merge_sections(old: &str, new: &[String]) -> String {
    // The preamble, then one chunk per `## ` heading.
    let mut chunks: Vec<String> = vec![String::new()];
    for line in old.split_inclusive('\n') {
        if line.starts_with("## ") {
            chunks.push(String::new());
        }
        if let Some(last) = chunks.last_mut() {
            last.push_str(line);
        }
    }
    let title = |chunk: &str| chunk.lines().next().unwrap_or("").trim_end().to_owned();
    for section in new {
        match chunks
            .iter_mut()
            .skip(1)
            .find(|c| title(c) == title(section))
        {
            Some(c) => c.clone_from(section),
            None => chunks.push(section.clone()),
        }
    }
    chunks.concat()
}

/// Draws a horizontal bar chart, with each bar's value printed beside it.
pub fn bar_chart(path: &Path, chart: &Chart) -> Result<(), String> {
    let height = 80 + 36 * chart.bars.len() as u32;
    let root = SVGBackend::new(path, (760, height)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let max = chart
        .bars
        .iter()
        .map(|b| b.1)
        .fold(0.0f64, f64::max)
        .max(1e-9)
        * 1.25;
    let n = chart.bars.len();
    let mut c = ChartBuilder::on(&root)
        .caption(&chart.caption, ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(30)
        .y_label_area_size(110)
        .build_cartesian_2d(0.0..max, (0..n).into_segmented())
        .map_err(|e| e.to_string())?;
    let labels: Vec<String> = chart.bars.iter().map(|b| b.0.clone()).collect();
    c.configure_mesh()
        .disable_y_mesh()
        .y_label_formatter(&|v| match v {
            SegmentValue::CenterOf(i) => labels.get(*i).cloned().unwrap_or_default(),
            _ => String::new(),
        })
        .draw()
        .map_err(|e| e.to_string())?;
    let colour = |i: usize| {
        if labels[i] == "serialhub" || labels[i].starts_with("serialhub") {
            RGBColor(31, 119, 180)
        } else {
            RGBColor(150, 150, 150)
        }
    };
    c.draw_series(chart.bars.iter().enumerate().map(|(i, (_, v))| {
        let mut bar = Rectangle::new(
            [
                (0.0, SegmentValue::Exact(i)),
                (*v, SegmentValue::Exact(i + 1)),
            ],
            colour(i).filled(),
        );
        bar.set_margin(6, 6, 0, 0);
        bar
    }))
    .map_err(|e| e.to_string())?;
    c.draw_series(chart.bars.iter().enumerate().map(|(i, (_, v))| {
        Text::new(
            format_value(*v),
            (*v + max * 0.01, SegmentValue::CenterOf(i)),
            ("sans-serif", 14),
        )
    }))
    .map_err(|e| e.to_string())?;
    root.present().map_err(|e| e.to_string())
}

/// Short, readable figure: 3 significant digits.
pub fn format_value(v: f64) -> String {
    if v == 0.0 {
        "0".into()
    } else if v.abs() >= 100.0 {
        format!("{v:.0}")
    } else if v.abs() >= 10.0 {
        format!("{v:.1}")
    } else if v.abs() >= 1.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.3}")
    }
}
