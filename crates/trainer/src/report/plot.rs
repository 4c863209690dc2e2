//! PNG plots with `plotters`: training curves, confusion matrices and line charts of several
//! runs. Text is drawn with DejaVu Sans, embedded (`assets/`), so plots look the same on a
//! machine without fonts. Files are written atomically.

use std::path::Path;
use std::sync::Once;

use plotters::prelude::*;
use plotters::style::{FontStyle, register_font};

use crate::atomic::write_file;
use crate::error::{Result, TrainError};
use crate::fit::EpochMetrics;

static FONT: &[u8] = include_bytes!("../../assets/DejaVuSans.ttf");
static REGISTER: Once = Once::new();

/// One line of a chart.
#[derive(Clone, Debug)]
pub struct Series {
    /// Legend text.
    pub name: String,
    /// `(x, y)` points in order.
    pub points: Vec<(f64, f64)>,
    /// An error bar of ± this much around each point (e.g. a standard deviation over seeds);
    /// empty: no error bars.
    pub spread: Vec<f64>,
}

impl Series {
    /// A line through `points`, without error bars.
    pub fn new(name: impl Into<String>, points: Vec<(f64, f64)>) -> Self {
        Self {
            name: name.into(),
            points,
            spread: Vec::new(),
        }
    }
}

fn plot_err(path: &Path, e: impl std::fmt::Display) -> TrainError {
    TrainError::Write {
        path: path.to_path_buf(),
        reason: format!("cannot draw the plot: {e}"),
    }
}

/// Draws into an RGB buffer of `size` with `draw`, then writes it to `path` as PNG.
fn render(
    path: &Path,
    size: (u32, u32),
    draw: impl FnOnce(DrawingArea<BitMapBackend<'_>, plotters::coord::Shift>) -> std::result::Result<(), String>,
) -> Result<()> {
    REGISTER.call_once(|| {
        // The embedded font is valid; if registration failed, text would be missing, not wrong.
        let _ = register_font("sans-serif", FontStyle::Normal, FONT);
    });
    let mut buf = vec![255u8; (size.0 * size.1 * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut buf, size).into_drawing_area();
        root.fill(&WHITE).map_err(|e| plot_err(path, e))?;
        draw(root.clone()).map_err(|e| plot_err(path, e))?;
        root.present().map_err(|e| plot_err(path, e))?;
    }
    let mut png = Vec::new();
    image::ImageEncoder::write_image(
        image::codecs::png::PngEncoder::new(&mut png),
        &buf,
        size.0,
        size.1,
        image::ExtendedColorType::Rgb8,
    )
    .map_err(|e| plot_err(path, e))?;
    write_file(path, &png)
}

const COLORS: [RGBColor; 8] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
];

fn draw_lines<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    title: &str,
    x_label: &str,
    y_label: &str,
    series: &[Series],
) -> std::result::Result<(), String> {
    let (mut x0, mut x1, mut y0, mut y1) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
    for s in series {
        for (i, &(x, y)) in s.points.iter().enumerate() {
            let e = s.spread.get(i).copied().unwrap_or(0.0);
            if x.is_finite() && y.is_finite() && e.is_finite() {
                (x0, x1, y0, y1) = (x0.min(x), x1.max(x), y0.min(y - e), y1.max(y + e));
            }
        }
    }
    if x0 > x1 {
        (x0, x1, y0, y1) = (0.0, 1.0, 0.0, 1.0);
    }
    if x1 - x0 < 1e-9 {
        x1 = x0 + 1.0;
    }
    let pad = ((y1 - y0) * 0.05).max(1e-6);
    let mut chart = ChartBuilder::on(area)
        .caption(title, ("sans-serif", 22))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(x0..x1, (y0 - pad)..(y1 + pad))
        .map_err(|e| e.to_string())?;
    // Epochs and layer counts are whole numbers: label them 1, 2, 3 rather than 1.0, 1.5, 2.0.
    let whole = series
        .iter()
        .flat_map(|s| s.points.iter())
        .all(|(x, _)| x.fract() == 0.0);
    let whole_label = |x: &f64| whole_number_label(*x);
    let mut mesh = chart.configure_mesh();
    mesh.x_desc(x_label).y_desc(y_label).label_style(("sans-serif", 14));
    if whole {
        mesh.x_label_formatter(&whole_label)
            .x_labels(((x1 - x0) as usize + 1).clamp(2, 10));
    }
    mesh.draw().map_err(|e| e.to_string())?;
    for (i, s) in series.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        let points: Vec<(f64, f64)> = s.points.iter().copied().filter(|(_, y)| y.is_finite()).collect();
        chart
            .draw_series(LineSeries::new(points.clone(), color.stroke_width(2)))
            .map_err(|e| e.to_string())?
            .label(s.name.clone())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2)));
        chart
            .draw_series(points.iter().map(|&p| Circle::new(p, 3, color.filled())))
            .map_err(|e| e.to_string())?;
        let bars = s
            .points
            .iter()
            .zip(&s.spread)
            .filter(|((_, y), e)| y.is_finite() && e.is_finite());
        chart
            .draw_series(
                bars.map(|(&(x, y), &e)| ErrorBar::new_vertical(x, y - e, y, y + e, color.stroke_width(2), 10)),
            )
            .map_err(|e| e.to_string())?;
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .label_font(("sans-serif", 14))
        .draw()
        .map_err(|e| e.to_string())
}

/// The tick label at `x` on a whole-number axis: the number without decimals, and nothing
/// between whole numbers.
fn whole_number_label(x: f64) -> String {
    if (x - x.round()).abs() < 1e-9 {
        format!("{}", x.round() as i64)
    } else {
        String::new()
    }
}

/// A line chart of `series` (e.g. training error of several networks) as a PNG.
pub fn line_chart(path: &Path, title: &str, x_label: &str, y_label: &str, series: &[Series]) -> Result<()> {
    render(path, (900, 560), |root| {
        draw_lines(&root, title, x_label, y_label, series)
    })
}

/// `curves.png`: loss (left) and top-1 accuracy (right) per epoch, training and validation.
pub fn training_curves(path: &Path, title: &str, history: &[EpochMetrics]) -> Result<()> {
    let series = |name: &str, f: fn(&EpochMetrics) -> f64| {
        Series::new(name, history.iter().map(|m| (m.epoch as f64, f(m))).collect())
    };
    let loss = [
        series("train loss", |m| m.train_loss),
        series("valid loss", |m| m.valid_loss),
    ];
    let accuracy = [
        series("train accuracy", |m| m.train_accuracy),
        series("valid accuracy", |m| m.valid_accuracy),
    ];
    render(path, (1200, 480), |root| {
        let root = root.titled(title, ("sans-serif", 22)).map_err(|e| e.to_string())?;
        let panels = root.split_evenly((1, 2));
        draw_lines(&panels[0], "loss", "epoch", "cross-entropy", &loss)?;
        draw_lines(&panels[1], "accuracy", "epoch", "top-1", &accuracy)
    })
}

/// `confusion.png`: rows are true classes, columns predictions; cell shade is the share of the
/// row, and the count is written in each cell.
pub fn confusion_matrix(path: &Path, title: &str, counts: &[Vec<usize>], class_names: &[String]) -> Result<()> {
    let n = counts.len();
    let cell = if n <= 12 { 56 } else { (900 / n.max(1)).max(8) } as u32;
    let label_w = 150u32;
    let size = (label_w + cell * n as u32 + 30, label_w + cell * n as u32 + 50);
    render(path, size, |root| {
        let root = root.titled(title, ("sans-serif", 20)).map_err(|e| e.to_string())?;
        let text = |s: &str, x: i32, y: i32, size: i32, color: &RGBColor| {
            root.draw(&Text::new(
                s.to_string(),
                (x, y),
                ("sans-serif", size).into_font().color(color),
            ))
            .map_err(|e| e.to_string())
        };
        let top = label_w as i32 - 20;
        text("predicted →", label_w as i32, top - 24, 14, &BLACK)?;
        for (r, row) in counts.iter().enumerate() {
            let total = row.iter().sum::<usize>().max(1) as f64;
            let y = top + (r as u32 * cell) as i32;
            if cell >= 20 {
                let name: String = class_names
                    .get(r)
                    .map_or(r.to_string(), |s| s.chars().take(16).collect());
                text(&name, 6, y + cell as i32 / 2 - 7, 13, &BLACK)?;
            }
            for (c, &count) in row.iter().enumerate() {
                let share = count as f64 / total;
                let x = label_w as i32 + (c as u32 * cell) as i32;
                let shade = (255.0 * (1.0 - share)) as u8;
                let fill = RGBColor(shade, shade, 255);
                root.draw(&Rectangle::new(
                    [(x, y), (x + cell as i32 - 1, y + cell as i32 - 1)],
                    fill.filled(),
                ))
                .map_err(|e| e.to_string())?;
                if cell >= 28 {
                    let color = if share > 0.5 { WHITE } else { BLACK };
                    text(&count.to_string(), x + 4, y + cell as i32 / 2 - 7, 12, &color)?;
                }
            }
        }
        Ok(())
    })
}

/// A picture for [`tile_grid`]: RGB pixels (`width × height × 3` bytes, row by row) and the
/// caption written above it.
#[derive(Clone, Debug)]
pub struct Tile {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// The pixels.
    pub rgb: Vec<u8>,
    /// One line of text above the picture.
    pub caption: String,
}

/// Pictures in a grid of `columns`, each with its caption above it, under `title`, as a PNG.
pub fn tile_grid(path: &Path, title: &str, tiles: &[Tile], columns: usize) -> Result<()> {
    const CAPTION: u32 = 22;
    const TITLE: u32 = 34;
    let columns = columns.clamp(1, tiles.len().max(1));
    let rows = tiles.len().div_ceil(columns).max(1);
    let cell_w = tiles.iter().map(|t| t.width).max().unwrap_or(1).max(230) + 10;
    let cell_h = tiles.iter().map(|t| t.height).max().unwrap_or(1) + CAPTION + 10;
    let size = (cell_w * columns as u32 + 10, cell_h * rows as u32 + TITLE);
    render(path, size, |root| {
        root.draw(&Text::new(title.to_string(), (10, 8), ("sans-serif", 18).into_font()))
            .map_err(|e| e.to_string())?;
        for (i, tile) in tiles.iter().enumerate() {
            let x = 10 + (i % columns) as u32 * cell_w;
            let y = TITLE + (i / columns) as u32 * cell_h;
            root.draw(&Text::new(
                tile.caption.clone(),
                (x as i32, y as i32 + 2),
                ("sans-serif", 13).into_font(),
            ))
            .map_err(|e| e.to_string())?;
            for (p, px) in tile.rgb.chunks_exact(3).enumerate() {
                let (px_x, px_y) = (p as u32 % tile.width, p as u32 / tile.width);
                let at = ((x + px_x) as i32, (y + CAPTION + px_y) as i32);
                root.draw_pixel(at, &RGBColor(px[0], px[1], px[2]))
                    .map_err(|e| e.to_string())?;
            }
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tiles_are_drawn_in_a_grid_below_their_captions() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("grid.png");
        let red = Tile {
            width: 40,
            height: 30,
            rgb: [200u8, 0, 0].repeat(40 * 30),
            caption: "red".into(),
        };
        tile_grid(&path, "t", &[red.clone(), red.clone(), red], 2).unwrap();
        let img = image::open(&path).unwrap().to_rgb8();
        // Two columns of 240 px, two rows of 30 + 22 + 10 px under a 34-px title.
        assert_eq!((img.width(), img.height()), (490, 2 * 62 + 34));
        // The third tile starts the second row, left, below its caption.
        assert_eq!(img.get_pixel(10 + 5, 34 + 62 + 22 + 5).0, [200, 0, 0]);
        assert_eq!(img.get_pixel(10 + 240 + 5, 34 + 62 + 22 + 5).0, [255, 255, 255]);
    }

    #[test]
    fn whole_number_axes_are_labelled_without_decimals() {
        assert_eq!(whole_number_label(1.0), "1");
        assert_eq!(whole_number_label(12.0), "12");
        assert_eq!(whole_number_label(2.5), "");
        assert_eq!(whole_number_label(-0.0), "0");
    }

    #[test]
    fn charts_are_readable_pngs_of_the_asked_size() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lines.png");
        let s = Series {
            spread: vec![0.1, 0.05, 0.0],
            ..Series::new("a", vec![(1.0, 0.5), (2.0, 0.25), (3.0, f64::NAN)])
        };
        line_chart(&path, "t", "x", "y", &[s]).unwrap();
        let img = image::open(&path).unwrap();
        assert_eq!((img.width(), img.height()), (900, 560));
        // Not a blank canvas: the line and the text left non-white pixels.
        let rgb = img.to_rgb8();
        let inked = rgb.pixels().filter(|p| p.0 != [255, 255, 255]).count();
        assert!(inked > 2000, "{inked}");

        let path = dir.path().join("confusion.png");
        let names: Vec<String> = ["x", "y", "z"].iter().map(|s| s.to_string()).collect();
        confusion_matrix(&path, "c", &[vec![5, 1, 0], vec![0, 6, 0], vec![2, 0, 4]], &names).unwrap();
        let img = image::open(&path).unwrap().to_rgb8();
        // Row 1 is all correct: its diagonal cell is pure blue (about 55×55 pixels less its text).
        let blue = img.pixels().filter(|p| p.0 == [0, 0, 255]).count();
        assert!(blue > 2000, "{blue}");
    }
}
