//! Pictures of a run as PNG: the loss curve and, for a classifier of two numeric features, its decision
//! regions with the data points on top.
//!
//! Labels need a font: the first TrueType font found in the usual system places is used, and without one
//! the charts are drawn without text rather than not at all.

use std::path::Path;
use std::sync::OnceLock;

use plotters::coord::Shift;
use plotters::coord::ranged1d::ValueFormatter;
use plotters::coord::types::RangedCoordf32;
use plotters::prelude::*;

use crate::{Error, Result};

/// Points of a 2-D classification set: the two raw features and the class index of each row, and whether
/// the row was held out from training (drawn as a cross; training rows as filled circles).
pub struct Points<'a> {
    pub x1: &'a [f32],
    pub x2: &'a [f32],
    pub class: &'a [usize],
    pub held_out: &'a [bool],
    /// The class names in output order, for the legend.
    pub classes: &'a [String],
    /// The features' names, x1's and x2's, for the axes.
    pub names: [&'a str; 2],
}

/// The loss at each sampled epoch (the first one before training), for the training rows and for rows held
/// out from training, with the legend's name for those ("validation rows").
pub struct LossCurve<'a> {
    pub epochs: &'a [u64],
    pub train: &'a [f64],
    pub held_out: Option<(&'a str, &'a [f64])>,
}

/// Classes for rows of two raw features, one per row.
pub type Classify<'a> = &'a dyn Fn(&[f32]) -> Result<Vec<usize>>;

/// Cells per side of the grid on which the decision regions are evaluated.
const GRID: usize = 160;

/// Draws the loss curve, and beside it the decision regions of `classify` (which takes grid points as
/// rows of two raw features and returns a class for each) when `points` is given. Writes `path` atomically.
pub fn draw(path: &Path, curve: &LossCurve, points: Option<(&Points, Classify)>) -> Result<()> {
    let lengths = |lengths: [usize; 2], what: &str| {
        if lengths[0] == lengths[1] {
            return Ok(());
        }
        Err(Error::ShapeMismatch {
            op: "plot::draw",
            expected: format!("{} {what}", lengths[0]),
            got: lengths[1].to_string(),
        })
    };
    lengths([curve.epochs.len(), curve.train.len()], "training losses")?;
    if let Some((_, losses)) = curve.held_out {
        lengths([curve.epochs.len(), losses.len()], "held-out losses")?;
    }
    if let Some((p, _)) = points {
        lengths([p.x1.len(), p.x2.len()], "x2 values")?;
        lengths([p.x1.len(), p.class.len()], "classes")?;
        lengths([p.x1.len(), p.held_out.len()], "held-out flags")?;
    }
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
    let held_out = curve.held_out.map(|(_, losses)| losses);
    let all = curve
        .train
        .iter()
        .chain(held_out.unwrap_or_default())
        .copied()
        .filter(|v| v.is_finite() && *v > 0.0);
    let (low, high) = all.fold((f64::MAX, f64::MIN), |(lo, hi), v| (lo.min(v), hi.max(v)));
    let (low, high) = if low <= high {
        (low * 0.9, high * 1.1)
    } else {
        (1e-3, 1.0)
    };
    let first = curve.epochs.first().copied().unwrap_or(0);
    // A run of one epoch still gets an axis of some width.
    let last = curve.epochs.last().copied().unwrap_or(0).max(first + 1);
    let (labelled, unlabelled) = log_ticks(low, high);
    let mut chart = ChartBuilder::on(area);
    chart.margin(16);
    if has_text {
        chart
            .caption("loss", ("sans-serif", 22))
            .x_label_area_size(40)
            .y_label_area_size(72);
    }
    let y = (low..high)
        .log_scale()
        .with_key_points(labelled)
        .with_light_points(unlabelled);
    let mut chart = chart.build_cartesian_2d(first..last, y)?;
    let mut mesh = chart.configure_mesh();
    if has_text {
        mesh.x_desc("epoch")
            .y_desc("loss")
            .y_label_formatter(&|v| tick_label(*v));
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
    let lines = [("training rows", curve.train, BLUE)]
        .into_iter()
        .chain(curve.held_out.map(|(name, losses)| (name, losses, RED)));
    for (name, losses, colour) in lines {
        let drawn = chart.draw_series(LineSeries::new(series(losses), colour.stroke_width(2)))?;
        if has_text {
            drawn
                .label(name)
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], colour));
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

/// Ticks of a log axis over [low, high]: labelled at each power of ten (and at 2 and 5 times it where the
/// axis spans less than three decades), unlabelled at the other multiples. An axis too narrow for two
/// labelled ticks labels every multiple it holds, or where it holds fewer than two, its ends and middle.
fn log_ticks(low: f64, high: f64) -> (Vec<f64>, Vec<f64>) {
    let decades = low.log10().floor() as i32..=high.log10().ceil() as i32;
    let ticks = decades
        .flat_map(|decade| (1..=9).map(move |m| (m, f64::from(m) * 10f64.powi(decade))))
        .filter(|(_, tick)| (low..=high).contains(tick));
    let spaced: &[u32] = if high / low < 1000.0 {
        &[1, 2, 5]
    } else {
        &[1]
    };
    let (labelled, unlabelled): (Vec<_>, Vec<_>) = ticks.partition(|(m, _)| spaced.contains(m));
    let values = |ticks: Vec<(u32, f64)>| ticks.into_iter().map(|(_, tick)| tick).collect();
    match (labelled.len(), unlabelled.len()) {
        (2.., _) => (values(labelled), values(unlabelled)),
        (few, more) if few + more >= 2 => (values([labelled, unlabelled].concat()), vec![]),
        _ => (vec![low, (low * high).sqrt(), high], vec![]),
    }
}

/// A tick's value to three significant digits: 0.05, 120, 3.2e-5.
fn tick_label(value: f64) -> String {
    let scientific = format!("{value:.2e}");
    let rounded: f64 = scientific
        .parse()
        .expect("a number formatted by Rust parses back");
    if (1e-3..1e4).contains(&rounded) {
        return rounded.to_string();
    }
    match scientific.split_once('e') {
        Some((mantissa, exponent)) => {
            let mantissa = mantissa.trim_end_matches('0').trim_end_matches('.');
            format!("{mantissa}e{exponent}")
        }
        None => scientific,
    }
}

/// A square grid over two features: the bounds of the points with a margin, `side` cells a side.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize)]
pub struct Grid {
    pub x: (f32, f32),
    pub y: (f32, f32),
    pub side: usize,
}

impl Grid {
    pub fn around(x1: &[f32], x2: &[f32], side: usize) -> Grid {
        let bounds = |v: &[f32]| {
            let (lo, hi) = v
                .iter()
                .fold((f32::MAX, f32::MIN), |(lo, hi), &x| (lo.min(x), hi.max(x)));
            let pad = ((hi - lo) * 0.1).max(0.1);
            (lo - pad, hi + pad)
        };
        Grid {
            x: bounds(x1),
            y: bounds(x2),
            side,
        }
    }

    /// Every cell's centre as a row of two raw features, a row of cells at a time from the lowest x2.
    pub fn centres(&self) -> Vec<f32> {
        let side = self.side;
        let centre =
            |i: usize, (lo, hi): (f32, f32)| lo + (i as f32 + 0.5) / side as f32 * (hi - lo);
        (0..side * side)
            .flat_map(|k| [centre(k % side, self.x), centre(k / side, self.y)])
            .collect()
    }
}

/// The grid around the points, and the class of every cell's centre.
struct Regions {
    grid: Grid,
    class: Vec<usize>,
}

fn classify_grid(
    points: &Points,
    classify: &dyn Fn(&[f32]) -> Result<Vec<usize>>,
) -> Result<Regions> {
    let grid = Grid::around(points.x1, points.x2, GRID);
    Ok(Regions {
        grid,
        class: classify(&grid.centres())?,
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
    let (x, y) = (regions.grid.x, regions.grid.y);
    let mut chart = chart.build_cartesian_2d(x.0..x.1, y.0..y.1)?;
    let (dx, dy) = ((x.1 - x.0) / GRID as f32, (y.1 - y.0) / GRID as f32);
    chart.draw_series(regions.class.iter().enumerate().map(|(k, &c)| {
        let (x0, y0) = (x.0 + (k % GRID) as f32 * dx, y.0 + (k / GRID) as f32 * dy);
        Rectangle::new(
            [(x0, y0), (x0 + dx, y0 + dy)],
            class_colour(c, points.classes.len()).mix(0.25).filled(),
        )
    }))?;
    let mut mesh = chart.configure_mesh();
    if has_text {
        (mesh.x_desc(points.names[0]).y_desc(points.names[1]))
            .x_label_formatter(&axis_label)
            .y_label_formatter(&axis_label);
    } else {
        mesh.disable_x_mesh().disable_y_mesh();
    }
    mesh.draw()?;
    let classes = points.classes.len();
    // Each row as (x1, x2, its class's colour), training rows or held-out ones.
    let rows = |held_out: bool| {
        let rows = points.x1.iter().zip(points.x2).zip(points.class);
        rows.zip(points.held_out)
            .filter(move |(_, h)| **h == held_out)
            .map(move |(((&a, &b), &c), _)| ((a, b), class_colour(c, classes)))
    };
    chart.draw_series(rows(false).map(|(at, colour)| Circle::new(at, 3, colour.filled())))?;
    chart.draw_series(
        rows(true).map(|(at, colour)| Cross::new(at, 4, colour.filled().stroke_width(2))),
    )?;
    if !has_text {
        return Ok(());
    }
    // The legend: a swatch per class, then what the two markers mean.
    for (c, name) in points.classes.iter().enumerate() {
        let style = class_colour(c, classes).filled();
        chart
            .draw_series(std::iter::empty::<Circle<(f32, f32), i32>>())?
            .label(name)
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 10, y + 5)], style));
    }
    if points.held_out.contains(&true) {
        let grey = RGBColor(90, 90, 90);
        chart
            .draw_series(std::iter::empty::<Circle<(f32, f32), i32>>())?
            .label("training")
            .legend(move |(x, y)| Circle::new((x + 5, y), 3, grey.filled()));
        chart
            .draw_series(std::iter::empty::<Cross<(f32, f32), i32>>())?
            .label("held out")
            .legend(move |(x, y)| Cross::new((x + 5, y), 4, grey.stroke_width(2)));
    }
    chart
        .configure_series_labels()
        .position(legend_corner(points, regions))
        .border_style(BLACK)
        .background_style(WHITE.mix(0.85))
        .draw()?;
    Ok(())
}

/// A tick label as plotters writes it, but never "-0.0": a tick that is 0 but for rounding (a sum of steps
/// from a negative start) is plain 0.
fn axis_label(value: &f32) -> String {
    let label = RangedCoordf32::format(value);
    // -0.0 matches 0.0.
    match label.parse::<f32>() {
        Ok(0.0) => label.trim_start_matches('-').to_string(),
        _ => label,
    }
}

/// The share of each axis, from a corner, that the legend is taken to cover.
const LEGEND_SHARE: f32 = 0.4;

/// The corner of the regions where the legend covers the fewest points: the upper right on a tie.
fn legend_corner(points: &Points, regions: &Regions) -> SeriesLabelPosition {
    // Where a value lies along an axis, from 0 at its low end to 1 at its high end.
    let along = |v: f32, (lo, hi): (f32, f32)| (v - lo) / (hi - lo);
    let near = |t: f32, high: bool| match high {
        true => t > 1.0 - LEGEND_SHARE,
        false => t < LEGEND_SHARE,
    };
    let corners = [
        (SeriesLabelPosition::UpperRight, true, true),
        (SeriesLabelPosition::UpperLeft, false, true),
        (SeriesLabelPosition::LowerRight, true, false),
        (SeriesLabelPosition::LowerLeft, false, false),
    ];
    let covered = |&(_, right, upper): &(SeriesLabelPosition, bool, bool)| {
        (points.x1.iter().zip(points.x2))
            .filter(|&(&x, &y)| {
                near(along(x, regions.grid.x), right) && near(along(y, regions.grid.y), upper)
            })
            .count()
    };
    let (corner, ..) = (corners.iter())
        .min_by_key(|corner| covered(corner))
        .expect("there are four corners");
    corner.clone()
}

/// The colour of class `class` of `classes`: distinct, evenly round the hue circle. The regions are drawn in
/// a pale mix of it, the points and the legend's swatches in the colour itself.
pub fn class_colour(class: usize, classes: usize) -> RGBColor {
    let (r, g, b) = HSLColor(class as f64 / classes.max(1) as f64, 0.75, 0.45).rgb();
    RGBColor(r, g, b)
}

/// Registers the first system font found as "sans-serif", once; false when there is none (the charts are
/// then drawn without text: no labels and no legends).
pub fn font_registered() -> bool {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tick_at_zero_is_never_negative_zero() {
        // A tick stepped to from a negative start lands a rounding error below 0.
        assert_eq!(
            RangedCoordf32::format(&-1e-8),
            "-0.0",
            "plotters' own label"
        );
        assert_eq!(axis_label(&-1e-8), "0.0");
        assert_eq!(axis_label(&-0.0), "0.0");
        assert_eq!(axis_label(&-0.5), "-0.5");
        assert_eq!(axis_label(&2.25), "2.25");
    }

    #[test]
    fn the_legend_goes_to_the_corner_with_the_fewest_points() {
        let classes = ["a".to_string()];
        let corner = |x1: &[f32], x2: &[f32]| {
            let points = Points {
                x1,
                x2,
                class: &vec![0; x1.len()],
                held_out: &vec![false; x1.len()],
                classes: &classes,
                names: ["x1", "x2"],
            };
            let regions = Regions {
                grid: Grid {
                    x: (0.0, 10.0),
                    y: (0.0, 10.0),
                    side: 0,
                },
                class: vec![],
            };
            legend_corner(&points, &regions)
        };
        // Points in every corner but one.
        let (left, right, low, high) = (1.0, 9.0, 1.0, 9.0);
        let cases = [
            (
                [left, left, right],
                [low, high, low],
                SeriesLabelPosition::UpperRight,
            ),
            (
                [right, left, right],
                [high, low, low],
                SeriesLabelPosition::UpperLeft,
            ),
            (
                [left, right, left],
                [low, high, high],
                SeriesLabelPosition::LowerRight,
            ),
            (
                [right, right, left],
                [low, high, high],
                SeriesLabelPosition::LowerLeft,
            ),
        ];
        for (x1, x2, free) in cases {
            assert_eq!(corner(&x1, &x2), free, "{x1:?} {x2:?}");
        }
        // Points in the middle leave every corner free: the upper right.
        assert_eq!(corner(&[5.0], &[5.0]), SeriesLabelPosition::UpperRight);
    }
}
