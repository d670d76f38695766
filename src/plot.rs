//! Pictures of a run as PNG: the loss curve and, for a classifier of two features, its decision regions
//! with the data points on top.
//!
//! Labels need a font: the first TrueType font found in the usual system places is used, and without one
//! the charts are drawn without text rather than not at all.

use std::path::Path;
use std::sync::OnceLock;

use plotters::coord::Shift;
use plotters::prelude::*;

use crate::{Error, Result};

/// Points of a 2-D classification set: the two raw features and the class index of each row.
pub struct Points<'a> {
    pub x1: &'a [f32],
    pub x2: &'a [f32],
    pub class: &'a [usize],
    pub classes: usize,
}

/// The loss after each logged epoch, for the training rows and (when held out) the test rows.
pub struct LossCurve<'a> {
    pub epochs: &'a [u64],
    pub train: &'a [f64],
    pub test: Option<&'a [f64]>,
}

/// Classes for rows of two raw features, one per row.
pub type Classify<'a> = &'a dyn Fn(&[f32]) -> Result<Vec<usize>>;

/// Cells per side of the grid on which the decision regions are evaluated.
const GRID: usize = 160;

/// Draws the loss curve, and beside it the decision regions of `classify` (which takes grid points as
/// rows of two raw features and returns a class for each) when `points` is given. Writes `path` atomically.
pub fn draw(path: &Path, curve: &LossCurve, points: Option<(&Points, Classify)>) -> Result<()> {
    let has_text = font_registered();
    let (width, height) = if points.is_some() {
        (1200, 520)
    } else {
        (640, 480)
    };
    let mut pixels = vec![255u8; width * height * 3];
    {
        let root = BitMapBackend::with_buffer(&mut pixels, (width as u32, height as u32))
            .into_drawing_area();
        let failed = |e: &dyn std::fmt::Display| {
            Error::io(path, "draw", std::io::Error::other(e.to_string()))
        };
        let panels = if points.is_some() {
            root.split_evenly((1, 2))
        } else {
            vec![root.clone()]
        };
        draw_loss(&panels[0], curve, has_text).map_err(|e| failed(&e))?;
        if let Some((points, classify)) = points {
            let regions = classify_grid(points, classify)?;
            draw_regions(&panels[1], points, &regions, has_text).map_err(|e| failed(&e))?;
        }
        root.present().map_err(|e| failed(&e))?;
    }
    let mut png = Vec::new();
    let encoded = image_png(&mut png, &pixels, width as u32, height as u32);
    encoded.map_err(|e| Error::io(path, "encode", std::io::Error::other(e)))?;
    crate::output::write(path, &png)
}

type Drawn = std::result::Result<(), Box<dyn std::error::Error>>;

fn draw_loss(area: &DrawingArea<BitMapBackend, Shift>, curve: &LossCurve, has_text: bool) -> Drawn {
    let all = curve
        .train
        .iter()
        .chain(curve.test.unwrap_or_default())
        .copied()
        .filter(|v| v.is_finite() && *v > 0.0);
    let (low, high) = all.fold((f64::MAX, f64::MIN), |(lo, hi), v| (lo.min(v), hi.max(v)));
    let (low, high) = if low <= high {
        (low * 0.9, high * 1.1)
    } else {
        (1e-3, 1.0)
    };
    let last = curve.epochs.last().copied().unwrap_or(1).max(1);
    let mut chart = ChartBuilder::on(area);
    chart.margin(16);
    if has_text {
        chart
            .caption("loss", ("sans-serif", 22))
            .x_label_area_size(36)
            .y_label_area_size(64);
    }
    let mut chart = chart.build_cartesian_2d(0u64..last, (low..high).log_scale())?;
    let mut mesh = chart.configure_mesh();
    if has_text {
        mesh.x_desc("epoch")
            .y_label_formatter(&|v| format!("{v:.1e}"));
    } else {
        mesh.disable_x_mesh().disable_y_mesh();
    }
    mesh.draw()?;
    let series = |values: &[f64]| {
        curve
            .epochs
            .iter()
            .copied()
            .zip(values.iter().copied())
            .collect::<Vec<_>>()
    };
    let train = chart.draw_series(LineSeries::new(series(curve.train), BLUE.stroke_width(2)))?;
    if has_text {
        train
            .label("training rows")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLUE));
    }
    if let Some(test) = curve.test {
        let held_out = chart.draw_series(LineSeries::new(series(test), RED.stroke_width(2)))?;
        if has_text {
            held_out
                .label("held-out rows")
                .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], RED));
        }
    }
    if has_text {
        chart
            .configure_series_labels()
            .border_style(BLACK)
            .background_style(WHITE.mix(0.8))
            .draw()?;
    }
    Ok(())
}

/// The bounds of the points with a margin, and the class of every grid cell's centre.
struct Regions {
    x: (f32, f32),
    y: (f32, f32),
    class: Vec<usize>,
}

fn classify_grid(
    points: &Points,
    classify: &dyn Fn(&[f32]) -> Result<Vec<usize>>,
) -> Result<Regions> {
    let bounds = |v: &[f32]| {
        let (lo, hi) = v
            .iter()
            .fold((f32::MAX, f32::MIN), |(lo, hi), &x| (lo.min(x), hi.max(x)));
        let pad = ((hi - lo) * 0.1).max(0.1);
        (lo - pad, hi + pad)
    };
    let (x, y) = (bounds(points.x1), bounds(points.x2));
    let centre = |i: usize, (lo, hi): (f32, f32)| lo + (i as f32 + 0.5) / GRID as f32 * (hi - lo);
    let grid: Vec<f32> = (0..GRID * GRID)
        .flat_map(|k| [centre(k % GRID, x), centre(k / GRID, y)])
        .collect();
    Ok(Regions {
        x,
        y,
        class: classify(&grid)?,
    })
}

fn draw_regions(
    area: &DrawingArea<BitMapBackend, Shift>,
    points: &Points,
    regions: &Regions,
    has_text: bool,
) -> Drawn {
    let mut chart = ChartBuilder::on(area);
    chart.margin(16);
    if has_text {
        chart
            .caption("decision regions", ("sans-serif", 22))
            .x_label_area_size(36)
            .y_label_area_size(48);
    }
    let (x, y) = (regions.x, regions.y);
    let mut chart = chart.build_cartesian_2d(x.0..x.1, y.0..y.1)?;
    let (dx, dy) = ((x.1 - x.0) / GRID as f32, (y.1 - y.0) / GRID as f32);
    chart.draw_series(regions.class.iter().enumerate().map(|(k, &c)| {
        let (x0, y0) = (x.0 + (k % GRID) as f32 * dx, y.0 + (k / GRID) as f32 * dy);
        Rectangle::new(
            [(x0, y0), (x0 + dx, y0 + dy)],
            colour(c, points.classes).mix(0.25).filled(),
        )
    }))?;
    let mut mesh = chart.configure_mesh();
    if has_text {
        mesh.x_desc("x1").y_desc("x2");
    } else {
        mesh.disable_x_mesh().disable_y_mesh();
    }
    mesh.draw()?;
    chart.draw_series(
        points
            .x1
            .iter()
            .zip(points.x2)
            .zip(points.class)
            .map(|((&a, &b), &c)| Circle::new((a, b), 3, colour(c, points.classes).filled())),
    )?;
    Ok(())
}

/// A distinct colour per class, evenly round the hue circle.
fn colour(class: usize, classes: usize) -> RGBColor {
    let (r, g, b) = HSLColor(class as f64 / classes.max(1) as f64, 0.75, 0.45).rgb();
    RGBColor(r, g, b)
}

/// Registers the first system font found as "sans-serif", once; false when there is none.
fn font_registered() -> bool {
    static REGISTERED: OnceLock<bool> = OnceLock::new();
    *REGISTERED.get_or_init(|| {
        const CANDIDATES: &[&str] = &[
            "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
            "/usr/share/fonts/TTF/DejaVuSans.ttf",
            "/usr/share/fonts/dejavu/DejaVuSans.ttf",
            "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
            "/System/Library/Fonts/Supplemental/Arial.ttf",
            "/Library/Fonts/Arial.ttf",
            "C:\\Windows\\Fonts\\arial.ttf",
        ];
        CANDIDATES
            .iter()
            .filter_map(|p| std::fs::read(p).ok())
            .any(|bytes| {
                // The font lives as long as the process: registered fonts must be 'static.
                let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
                plotters::style::register_font("sans-serif", FontStyle::Normal, bytes).is_ok()
            })
    })
}

/// Encodes RGB pixels as PNG.
fn image_png(
    out: &mut Vec<u8>,
    pixels: &[u8],
    width: u32,
    height: u32,
) -> std::result::Result<(), String> {
    let mut encoder = png::Encoder::new(out, width, height);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    let mut writer = encoder.write_header().map_err(|e| e.to_string())?;
    writer.write_image_data(pixels).map_err(|e| e.to_string())
}
