//! Data in: CSV files and built-in datasets as tables of named columns, and the schema that turns a table's
//! columns into a network's inputs and targets (saved with a model, so that `predict` reads files the same way).

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::io::Read;
use std::path::Path;

use rand::{SeedableRng, rngs::StdRng, seq::SliceRandom};
use serde::{Deserialize, Serialize};

use crate::network::{Dataset, Loss};
use crate::{Error, Result, quote, quote_list};

/// A table read from a file (CSV, TSV, ...) or generated: a header and rows of text cells.
#[derive(Clone, Debug, PartialEq)]
pub struct Table {
    /// Where the rows came from, for messages: a file path or a dataset name.
    pub source: String,
    pub header: Vec<String>,
    pub rows: Vec<Row>,
}

/// One data row and the line of the file it was on (1 is the header).
#[derive(Clone, Debug, PartialEq)]
pub struct Row {
    pub line: u64,
    pub cells: Vec<String>,
}

/// What a table read from standard input is called in messages.
const STANDARD_INPUT: &str = "standard input";

/// The delimiters a header is tried with when none is given, comma first so that it wins a tie.
pub const DELIMITERS: [u8; 4] = [b',', b'\t', b';', b'|'];

impl Table {
    /// Reads a table with a header row and at least one data row from a file, or from standard input where
    /// `path` is `-`. Cells are separated by `delimiter`, or where it is None by the one of [`DELIMITERS`]
    /// that splits the header into the most cells. Every row must have as many cells as the header.
    pub fn read(path: &Path, delimiter: Option<u8>) -> Result<Table> {
        Table::read_maybe_empty(path, delimiter)?.with_rows()
    }

    /// [`Table::read`], where a header without data rows is a table of no rows: what `predict` answers with
    /// a header alone.
    pub fn read_maybe_empty(path: &Path, delimiter: Option<u8>) -> Result<Table> {
        if path == Path::new("-") {
            let mut bytes = Vec::new();
            std::io::stdin()
                .read_to_end(&mut bytes)
                .map_err(|e| Error::io(Path::new(STANDARD_INPUT), "read", e))?;
            return Table::parse_maybe_empty(&bytes, STANDARD_INPUT, delimiter);
        }
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, "read", e))?;
        Table::parse_maybe_empty(&bytes, &path.display().to_string(), delimiter)
    }

    /// [`Table::read`] with the delimiter detected from the header.
    pub fn read_csv(path: &Path) -> Result<Table> {
        Table::read(path, None)
    }

    /// A table from the text of a file; `source` names it in messages. See [`Table::read`].
    pub fn parse(bytes: &[u8], source: &str, delimiter: Option<u8>) -> Result<Table> {
        Table::parse_maybe_empty(bytes, source, delimiter)?.with_rows()
    }

    /// [`Table::parse`], where a header without data rows is a table of no rows.
    pub fn parse_maybe_empty(bytes: &[u8], source: &str, delimiter: Option<u8>) -> Result<Table> {
        let source = source.to_string();
        let delimiter = match delimiter {
            Some(delimiter) => check_delimiter(delimiter)?,
            None => detect_delimiter(bytes),
        };
        let mut lines = Lines::new(bytes);
        let mut reader = csv::ReaderBuilder::new()
            .delimiter(delimiter)
            .trim(csv::Trim::All)
            .from_reader(bytes);
        let header: Vec<String> = reader
            .headers()
            .map_err(|e| csv_error(&source, &mut lines, e))?
            .iter()
            .map(str::to_string)
            .collect();
        if header.iter().all(String::is_empty) {
            return Err(Error::data(
                &source,
                None,
                "it is empty; a table needs a header row and data rows",
            ));
        }
        let what = if header.iter().any(String::is_empty) {
            Some("an empty column name".to_string())
        } else {
            repeated(&header).map(|name| format!("{} twice", quote(name)))
        };
        if let Some(what) = what {
            let reason =
                format!("the header has {what}; columns are found by name, so each needs its own");
            return Err(Error::data(&source, Some(1), reason));
        }
        let mut rows = Vec::new();
        for record in reader.records() {
            let record = record.map_err(|e| csv_error(&source, &mut lines, e))?;
            let line = record.position().map_or(0, |p| lines.at(p.byte()));
            rows.push(Row {
                line,
                cells: record.iter().map(str::to_string).collect(),
            });
        }
        if let Some(hint) = delimiter_hint(&header, &rows, delimiter) {
            return Err(Error::data(&source, Some(1), hint));
        }
        Ok(Table {
            source,
            header,
            rows,
        })
    }

    /// The table, where it has data rows.
    fn with_rows(self) -> Result<Table> {
        match self.rows.is_empty() {
            true => Err(Error::data(
                &self.source,
                None,
                "it has a header but no data rows",
            )),
            false => Ok(self),
        }
    }

    /// Writes the table as CSV (see [`crate::output::write`]): a reader never sees half a file.
    pub fn write_csv(&self, path: &Path) -> Result<()> {
        crate::output::write(path, &self.csv_bytes()?)
    }

    /// The table as CSV text; every row must have as many cells as the header.
    pub fn csv_bytes(&self) -> Result<Vec<u8>> {
        let failed = |e: &dyn std::fmt::Display| {
            Error::data(&self.source, None, format!("cannot be written as CSV: {e}"))
        };
        let mut writer = csv::Writer::from_writer(Vec::new());
        for record in std::iter::once(&self.header).chain(self.rows.iter().map(|r| &r.cells)) {
            writer.write_record(record).map_err(|e| failed(&e))?;
        }
        writer.into_inner().map_err(|e| failed(&e))
    }

    /// The indices of the columns called `names`, in their order. The one place columns are found by name:
    /// a name the header lacks is an error that lists the columns there are, where `role` says what the
    /// missing column was wanted for ("which --features names", "the target column").
    pub fn columns<S: AsRef<str>>(&self, names: &[S], role: &str) -> Result<Vec<usize>> {
        let index: HashMap<&str, usize> = (self.header.iter().enumerate())
            .map(|(i, h)| (h.as_str(), i))
            .collect();
        let find = |name: &S| {
            index.get(name.as_ref()).copied().ok_or_else(|| {
                Error::data(
                    &self.source,
                    Some(1),
                    format!(
                        "there is no column {}, {role}; its columns are {}",
                        quote(name.as_ref()),
                        quote_list(&self.header)
                    ),
                )
            })
        };
        names.iter().map(find).collect()
    }

    /// The index of the column called `name`: [`Table::columns`] for one name.
    pub fn column(&self, name: &str, role: &str) -> Result<usize> {
        Ok(self.columns(&[name], role)?[0])
    }

    /// The cell at `column` of `row` as a finite number.
    fn number(&self, row: &Row, column: usize) -> Result<f32> {
        let cell = &row.cells[column];
        let Some(value) = cell.parse::<f32>().ok().filter(|_| !is_missing(cell)) else {
            return Err(not_numbers(self, column));
        };
        if !value.is_finite() {
            return Err(Error::data(
                &self.source,
                Some(row.line),
                format!(
                    "column {} holds {}; values must be finite",
                    quote(&self.header[column]),
                    quote(cell)
                ),
            ));
        }
        Ok(value)
    }

    /// A table of the given rows only.
    pub fn select(&self, rows: &[usize]) -> Table {
        Table {
            source: self.source.clone(),
            header: self.header.clone(),
            rows: rows.iter().map(|&i| self.rows[i].clone()).collect(),
        }
    }
}

/// Line numbers of byte offsets into a CSV file, counted as the reader moves on: the csv crate's own count
/// lags one line behind after each CRLF, whose `\n` it only takes as the start of the next record.
struct Lines<'a> {
    bytes: &'a [u8],
    counted_to: usize,
    newlines: u64,
}

impl<'a> Lines<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        Lines {
            bytes,
            counted_to: 0,
            newlines: 0,
        }
    }

    /// The line (from 1) of the record that starts at or after `byte`, past any line ends before it.
    fn at(&mut self, byte: u64) -> u64 {
        let mut start = (byte as usize).min(self.bytes.len());
        while start < self.bytes.len() && matches!(self.bytes[start], b'\r' | b'\n') {
            start += 1;
        }
        if start < self.counted_to {
            // Offsets only grow while rows are read; an error may look back, so count afresh.
            (self.counted_to, self.newlines) = (0, 0);
        }
        let newlines = self.bytes[self.counted_to..start]
            .iter()
            .filter(|&&b| b == b'\n')
            .count();
        self.newlines += newlines as u64;
        self.counted_to = start;
        self.newlines + 1
    }
}

fn csv_error(source: &str, lines: &mut Lines, error: csv::Error) -> Error {
    let line = error.position().map(|p| lines.at(p.byte()));
    let reason = match error.kind() {
        csv::ErrorKind::UnequalLengths {
            expected_len, len, ..
        } => {
            format!("this row has {len} cells but the header has {expected_len}")
        }
        _ => error.to_string(),
    };
    Error::data(source, line, reason)
}

/// Characters that may separate cells: where one of them splits a table read as one column, header and first
/// row alike, it is most likely the table's delimiter.
const LIKELY_DELIMITERS: [u8; 6] = [b',', b'\t', b';', b'|', b':', b' '];

/// The delimiter that `text` names: `tab` (or `\t`) or one ASCII character that can separate cells.
pub fn parse_delimiter(text: &str) -> Result<u8> {
    let delimiter = match text {
        "tab" | "\\t" => b'\t',
        _ if text.len() == 1 => text.as_bytes()[0],
        _ => {
            return Err(Error::invalid(
                "delimiter",
                text,
                "a delimiter is one ASCII character, such as , ; | or tab",
            ));
        }
    };
    check_delimiter(delimiter)
}

/// Refuses a delimiter that cannot separate cells: the quote, a character that numbers are written with, a
/// letter, a control character other than tab, a byte beyond ASCII.
fn check_delimiter(delimiter: u8) -> Result<u8> {
    let reason = match delimiter {
        b'"' => "the quote encloses cells; it cannot also separate them",
        d if d.is_ascii_digit() || b".-+eE".contains(&d) => {
            "numbers are written with it; use , ; | or tab"
        }
        d if d.is_ascii_alphabetic() => {
            "a letter belongs to words and names in cells; use , ; | or tab"
        }
        b'\t' | b' ' => return Ok(delimiter),
        d if d.is_ascii_punctuation() => return Ok(d),
        _ => {
            "it cannot separate cells; use , ; | tab, space or another ASCII punctuation character"
        }
    };
    Err(Error::invalid(
        "delimiter",
        (delimiter as char).escape_default(),
        reason,
    ))
}

/// How to write `delimiter` after `--delimiter` in a shell: `tab`, or the character in single quotes.
fn delimiter_option(delimiter: u8) -> String {
    match delimiter {
        b'\t' => "tab".into(),
        d => format!("'{}'", d as char),
    }
}

/// The one of [`DELIMITERS`] that splits the header into the most cells, comma on a tie.
fn detect_delimiter(bytes: &[u8]) -> u8 {
    // `max_by_key` keeps the last of equals, so walking the list backwards lets comma win a tie.
    DELIMITERS
        .into_iter()
        .rev()
        .max_by_key(|&delimiter| header_cells(bytes, delimiter))
        .expect("DELIMITERS is not empty")
}

/// How many cells `delimiter` splits the first record of `bytes` into; a quoted cell is one cell, whatever
/// it holds.
fn header_cells(bytes: &[u8], delimiter: u8) -> usize {
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(delimiter)
        .has_headers(false)
        .from_reader(bytes);
    let mut header = csv::ByteRecord::new();
    match reader.read_byte_record(&mut header) {
        Ok(true) => header.len(),
        _ => 0,
    }
}

/// For a table read as one column, the reason to give when another likely delimiter splits its header and
/// its first row into as many cells: that is most likely the table's own.
fn delimiter_hint(header: &[String], rows: &[Row], used: u8) -> Option<String> {
    let ([name], Some(first)) = (header, rows.first()) else {
        return None;
    };
    let cells = |text: &str, delimiter: u8| text.split(char::from(delimiter)).count();
    let likely = LIKELY_DELIMITERS.into_iter().find(|&d| {
        d != used && cells(name, d) > 1 && cells(&first.cells[0], d) == cells(name, d)
    })?;
    Some(format!(
        "the header reads as one column, {}, with cells separated by {}; {} splits it and the first row \
         into {} cells each, so try --delimiter {}",
        quote(name),
        delimiter_option(used),
        delimiter_option(likely),
        cells(name, likely),
        delimiter_option(likely)
    ))
}

/// The most points a built-in dataset generates, and the most spiral arms: beyond them a toy set only fills
/// memory (a generated row costs about 200 bytes as text, so a million is already 200 MB).
pub const MAX_SAMPLES: usize = 1_000_000;
pub const MAX_CLASSES: usize = 1000;

/// The built-in datasets, generated from a seed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Builtin {
    Xor,
    Moons,
    Circles,
    Spirals,
}

impl Builtin {
    pub fn parse(name: &str) -> Option<Builtin> {
        match name {
            "xor" => Some(Builtin::Xor),
            "moons" => Some(Builtin::Moons),
            "circles" => Some(Builtin::Circles),
            "spirals" => Some(Builtin::Spirals),
            _ => None,
        }
    }

    /// `samples` points with Gaussian `noise`; spirals have `classes` arms. Columns `x1`, `x2`, `y`.
    pub fn generate(self, samples: usize, noise: f32, classes: usize, seed: u64) -> Result<Table> {
        if !(noise.is_finite() && noise >= 0.0) {
            return Err(Error::invalid(
                "noise",
                crate::error::number(noise),
                "noise is a standard deviation: a finite number ≥ 0",
            ));
        }
        if self != Builtin::Xor && samples < 2 {
            return Err(Error::invalid(
                "samples",
                samples,
                "generate at least 2 samples",
            ));
        }
        if samples > MAX_SAMPLES {
            return Err(Error::invalid(
                "samples",
                samples,
                format!("a built-in dataset has at most {MAX_SAMPLES} samples"),
            ));
        }
        if self == Builtin::Spirals && !(2..=MAX_CLASSES.min(samples)).contains(&classes) {
            return Err(Error::invalid(
                "classes",
                classes,
                format!(
                    "spirals need at least 2 classes and at most {MAX_CLASSES}, and no more than --samples ({samples}) \
                     so that every class has a point"
                ),
            ));
        }
        // A stream of its own, so that the noise is not the initial weights' draws over again.
        let mut rng = StdRng::seed_from_u64(seed ^ 0xDA7A_5EED);
        let mut normal = move || noise * crate::network::standard_normal(&mut rng);
        let tau = std::f32::consts::TAU;
        let points: Vec<(f32, f32, usize)> = match self {
            Builtin::Xor => vec![(0.0, 0.0, 0), (0.0, 1.0, 1), (1.0, 0.0, 1), (1.0, 1.0, 0)],
            Builtin::Moons => (0..samples)
                .map(|i| {
                    let upper = i % 2 == 0;
                    let t = (i / 2) as f32 / (samples.div_ceil(2) - 1).max(1) as f32 * tau / 2.0;
                    let (x, y) = if upper {
                        (t.cos(), t.sin())
                    } else {
                        (1.0 - t.cos(), 0.5 - t.sin())
                    };
                    (x + normal(), y + normal(), usize::from(!upper))
                })
                .collect(),
            Builtin::Circles => (0..samples)
                .map(|i| {
                    let inner = i % 2 == 1;
                    let t = (i / 2) as f32 / samples.div_ceil(2) as f32 * tau;
                    let r = if inner { 0.5 } else { 1.0 };
                    (
                        r * t.cos() + normal(),
                        r * t.sin() + normal(),
                        usize::from(inner),
                    )
                })
                .collect(),
            Builtin::Spirals => (0..samples)
                .map(|i| {
                    let class = i % classes;
                    let r = (i / classes) as f32 / samples.div_ceil(classes).max(1) as f32;
                    let t = class as f32 * tau / classes as f32 + 1.75 * tau * r / 2.0 + normal();
                    (r * t.cos(), r * t.sin(), class)
                })
                .collect(),
        };
        Ok(Table {
            source: format!("the {self:?} dataset").to_lowercase(),
            header: vec!["x1".into(), "x2".into(), "y".into()],
            rows: points
                .into_iter()
                .enumerate()
                .map(|(i, (x1, x2, y))| Row {
                    line: i as u64 + 2,
                    cells: vec![x1.to_string(), x2.to_string(), y.to_string()],
                })
                .collect(),
        })
    }
}

/// Scaling to mean 0 and deviation 1: each column's mean and standard deviation on the training rows.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Standardize {
    pub mean: Vec<f32>,
    pub std: Vec<f32>,
}

impl Standardize {
    /// Fits rows of `names.len()` columns; a constant column keeps deviation 1, and a column in `fixed` is
    /// left as it is (mean 0, deviation 1). Summed in f64, so that large values do not overflow, and refused
    /// where the statistics do not fit f32.
    fn fit(rows: &[f32], names: &[&str], fixed: &[bool], source: &str) -> Result<Standardize> {
        let (cols, count) = (names.len(), (rows.len() / names.len().max(1)) as f64);
        let column = |c: usize| rows.iter().skip(c).step_by(cols).map(|&v| f64::from(v));
        let mut fitted = Standardize {
            mean: Vec::with_capacity(cols),
            std: Vec::with_capacity(cols),
        };
        for c in 0..cols {
            let (m, s) = if fixed[c] {
                (0.0, 1.0)
            } else {
                let m = column(c).sum::<f64>() / count;
                let var = column(c).map(|v| (v - m).powi(2)).sum::<f64>() / count;
                (m, if var > 0.0 { var.sqrt() } else { 1.0 })
            };
            let (m32, s32) = (m as f32, s as f32);
            if !(m32.is_finite() && s32.is_finite() && s32 > 0.0) {
                return Err(Error::data(
                    source,
                    None,
                    format!(
                        "column {} has mean {m:e} and deviation {s:e}, which --standardize cannot hold \
                         in single precision (f32); rescale the column",
                        quote(names[c])
                    ),
                ));
            }
            fitted.mean.push(m32);
            fitted.std.push(s32);
        }
        Ok(fitted)
    }

    /// Scales rows of values column by column.
    fn apply(&self, rows: &mut [f32]) {
        for row in rows.chunks_mut(self.mean.len()) {
            for ((v, &mean), &std) in row.iter_mut().zip(&self.mean).zip(&self.std) {
                // In f64: the difference of two values near f32's limit would overflow.
                *v = ((f64::from(*v) - f64::from(mean)) / f64::from(std)) as f32;
            }
        }
    }

    /// Undoes [`Standardize::apply`]: scaled rows back in their columns' own units.
    fn invert(&self, rows: &mut [f32]) {
        for row in rows.chunks_mut(self.mean.len()) {
            for ((v, &mean), &std) in row.iter_mut().zip(&self.mean).zip(&self.std) {
                *v = (f64::from(*v) * f64::from(std) + f64::from(mean)) as f32;
            }
        }
    }

    /// Why these statistics cannot scale `columns` columns of `what`, if they cannot.
    fn unusable(&self, columns: usize, what: &str) -> Option<String> {
        let usable = self.std.iter().all(|v| v.is_finite() && *v > 0.0)
            && self.mean.iter().all(|v| v.is_finite());
        (self.mean.len() != columns || self.std.len() != columns || !usable).then(|| {
            format!(
                "scaling statistics must be finite, with deviations above 0, one per {what} ({columns}); \
                 it has {} means and {} deviations",
                self.mean.len(),
                self.std.len()
            )
        })
    }
}

/// The most categories a text feature column is one-hot encoded over.
pub const MAX_CATEGORIES: usize = 20;

/// Which columns of a table are the features.
#[derive(Clone, Debug, Default, PartialEq)]
pub enum FeatureColumns {
    /// Every column but the target.
    #[default]
    AllButTarget,
    /// These columns, in this order (`--features`).
    Only(Vec<String>),
    /// Every column but the target and these (`--ignore`).
    AllBut(Vec<String>),
}

impl FeatureColumns {
    /// The feature columns' indices in `table`, whose target is column `target`.
    fn indices(&self, table: &Table, target: usize) -> Result<Vec<usize>> {
        let (option, names) = match self {
            FeatureColumns::AllButTarget => {
                return Ok((0..table.header.len()).filter(|&c| c != target).collect());
            }
            FeatureColumns::Only(names) => ("features", names),
            FeatureColumns::AllBut(names) => ("ignore", names),
        };
        let named = table.columns(names, &format!("which --{option} names"))?;
        // Leaving out the target is harmless: it is never a feature.
        if let (FeatureColumns::Only(_), true) = (self, named.contains(&target)) {
            return Err(Error::invalid(
                option,
                &table.header[target],
                "that is the target column, which is never a feature; --target chooses another",
            ));
        }
        if let Some(name) = repeated(names) {
            return Err(Error::invalid(
                option,
                name,
                "it is named twice; name each column once",
            ));
        }
        let features: Vec<usize> = match self {
            FeatureColumns::AllBut(_) => (0..table.header.len())
                .filter(|c| *c != target && !named.contains(c))
                .collect(),
            _ => named,
        };
        if features.is_empty() {
            return Err(Error::invalid(
                option,
                names.join(","),
                "that leaves no feature column; a network needs at least one input",
            ));
        }
        Ok(features)
    }

    /// The feature columns' names in `table`, whose target is the column `target`.
    pub fn names(&self, table: &Table, target: &str) -> Result<Vec<String>> {
        let target = table.column(target, "which --target names")?;
        let indices = self.indices(table, target)?;
        Ok(indices
            .into_iter()
            .map(|c| table.header[c].clone())
            .collect())
    }
}

/// How a table's columns become a network's inputs and targets. Saved with a model.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Schema {
    /// The feature columns, in input order.
    pub features: Vec<String>,
    /// The text feature columns by name, each with its categories in the order of its one-hot inputs.
    #[serde(default)]
    pub categories: BTreeMap<String, Vec<String>>,
    pub target: String,
    /// Class labels in output order, for classifiers; none for regression.
    pub classes: Option<Vec<String>>,
    /// One mean and deviation per input; a one-hot input keeps 0 and 1.
    pub standardize: Option<Standardize>,
    /// A regression target's mean and deviation: the network learns the scaled target, and its predictions
    /// are scaled back ([`Schema::in_target_units`]).
    #[serde(default)]
    pub target_standardize: Option<Standardize>,
}

impl Schema {
    /// The loss a table's target suggests: cross-entropy where it holds text (its values are classes), mse
    /// where it holds numbers (a missing value or a stray word among them is an error, not a class).
    pub fn default_loss(table: &Table, target: Option<&str>) -> Result<Loss> {
        let target = Schema::target_column(table, target)?;
        Ok(match is_numeric(table, target) {
            true => Loss::Mse,
            false => Loss::Ce,
        })
    }

    /// The index of the target column: `target`, or the last one.
    fn target_column(table: &Table, target: Option<&str>) -> Result<usize> {
        match target {
            Some(name) => table.column(name, "which --target names"),
            None => Ok(table.header.len() - 1),
        }
    }

    /// The features are the `columns` chosen; a column of numbers is one input (missing values in it are
    /// an error), and a text feature column with at most [`MAX_CATEGORIES`] distinct values, fewer than half
    /// the rows, is one-hot encoded over them. For bce and ce the target's distinct values become the
    /// classes, sorted numerically where they are all numbers.
    pub fn infer(
        table: &Table,
        target: Option<&str>,
        columns: &FeatureColumns,
        loss: Loss,
    ) -> Result<Schema> {
        let target_column = Schema::target_column(table, target)?;
        if table.header.len() < 2 {
            return Err(Error::data(
                &table.source,
                Some(1),
                "the header names only one column; a feature and a target are needed",
            ));
        }
        let features = columns.indices(table, target_column)?;
        let mut categories = BTreeMap::new();
        let mut unusable = Vec::new();
        for &c in &features {
            match encoding(table, c)? {
                Encoding::Number => {}
                Encoding::OneHot(levels) => {
                    categories.insert(table.header[c].clone(), levels);
                }
                Encoding::TooManyValues { distinct, example } => {
                    unusable.push((c, distinct, example))
                }
            }
        }
        if !unusable.is_empty() {
            unusable.sort_by_key(|&(c, ..)| c);
            return Err(unusable_text(table, &unusable, columns));
        }
        let target = &table.header[target_column];
        if is_numeric(table, target_column) {
            check_numbers(table, target_column)?;
        } else if let (false, Some(row)) =
            (loss.is_classification(), first_word(table, target_column))
        {
            return Err(Error::invalid(
                "loss",
                loss,
                format!(
                    "the target {} holds text ({} on line {} of {}), but {loss} is a regression loss, which \
                     needs numbers; to classify by it, use --loss ce (or bce for two classes)",
                    quote(target),
                    quote(&row.cells[target_column]),
                    row.line,
                    table.source
                ),
            ));
        }
        let classes = loss.is_classification().then(|| {
            let labels = table.rows.iter().map(|r| r.cells[target_column].as_str());
            let numeric = labels.clone().all(|l| number_of(l).is_some());
            // A class is known by its key: "1" and "1.0" are one class where every label is a number.
            let mut classes: Vec<String> = labels
                .map(|l| class_key(l, numeric))
                .collect::<HashSet<_>>()
                .into_iter()
                .collect();
            if numeric {
                // Every class is a number here.
                let value = |class: &String| number_of(class).unwrap_or_default();
                classes.sort_by(|a, b| value(a).total_cmp(&value(b)));
            } else {
                classes.sort();
            }
            classes
        });
        Ok(Schema {
            features: features.iter().map(|&c| table.header[c].clone()).collect(),
            categories,
            target: target.clone(),
            classes,
            standardize: None,
            target_standardize: None,
        })
    }

    /// How many inputs the network needs: one per numeric feature, one per category of a text feature.
    pub fn inputs(&self) -> usize {
        self.features.iter().map(|f| self.width(f)).sum()
    }

    /// The inputs a feature column takes: one, or one per category.
    fn width(&self, feature: &str) -> usize {
        self.categories.get(feature).map_or(1, Vec::len)
    }

    /// The numeric features that number the rows: a different whole number on every row, with no gaps
    /// (1 to N in any order), as a row ID does. A network learns nothing true from one, so the user hears of it.
    pub fn row_numbering_features(&self, table: &Table) -> Vec<&str> {
        const FEWEST_ROWS: usize = 10;
        let rows = table.rows.len();
        if rows < FEWEST_ROWS {
            return Vec::new();
        }
        let numbers = |c: usize| -> Option<Vec<i64>> {
            let whole = |cell: &String| {
                let value: f64 = cell.parse().ok()?;
                (value.fract() == 0.0 && value.abs() < 1e15).then_some(value as i64)
            };
            table.rows.iter().map(|r| whole(&r.cells[c])).collect()
        };
        self.features
            .iter()
            .filter(|name| !self.categories.contains_key(*name))
            .filter(|name| {
                let Some(c) = table.header.iter().position(|h| h == *name) else {
                    return false;
                };
                let Some(mut values) = numbers(c) else {
                    return false;
                };
                values.sort_unstable();
                values.windows(2).all(|w| w[1] == w[0] + 1)
            })
            .map(String::as_str)
            .collect()
    }

    /// The features for a message: "2 feature column(s) (a, b)", and for text features how they are
    /// encoded: "3 feature column(s) (a, b, city) as 5 inputs (city one-hot over 3 categories)".
    pub fn describe_inputs(&self) -> String {
        let columns = format!(
            "{} feature column(s) ({})",
            self.features.len(),
            self.features.join(", ")
        );
        if self.categories.is_empty() {
            return columns;
        }
        let encoded: Vec<String> = self
            .categories
            .iter()
            .map(|(name, levels)| format!("{name} one-hot over {} categories", levels.len()))
            .collect();
        format!(
            "{columns} as {} inputs ({})",
            self.inputs(),
            encoded.join(", ")
        )
    }

    /// How many outputs the network needs: one per class for ce, one for bce, one per target otherwise.
    pub fn outputs(&self, loss: Loss) -> usize {
        match (&self.classes, loss) {
            (Some(classes), Loss::Ce) => classes.len(),
            _ => 1,
        }
    }

    /// Checks the class count against the loss: bce needs exactly two classes.
    pub fn check_classes(&self, loss: Loss) -> Result<()> {
        match (&self.classes, loss) {
            (Some(classes), Loss::Bce) if classes.len() != 2 => Err(Error::invalid(
                "loss",
                "bce",
                format!(
                    "binary cross-entropy needs two classes, but {} has {}: {}; use --loss ce",
                    quote(&self.target),
                    classes.len(),
                    quote_list(classes)
                ),
            )),
            (Some(classes), Loss::Ce) if classes.len() < 2 => Err(Error::invalid(
                "loss",
                "ce",
                format!(
                    "{} has only one class, {}: there is nothing to classify",
                    quote(&self.target),
                    quote_list(classes)
                ),
            )),
            _ => Ok(()),
        }
    }

    /// Checks a schema read from a file against the network it came with: an input per feature (or per
    /// category), the classes the output layer and loss need, and scaling statistics for every input and
    /// a regression target's outputs.
    pub fn check_fits(&self, network: &crate::Network) -> Result<()> {
        let invalid = |reason: String| Error::invalid("init", "the model's schema", reason);
        if let Some(name) = self.categories.keys().find(|c| !self.features.contains(c)) {
            return Err(invalid(format!(
                "categories are given for {}, which is not a feature",
                quote(name)
            )));
        }
        if self.inputs() != network.inputs() {
            return Err(invalid(format!(
                "{} for {} inputs",
                self.describe_inputs(),
                network.inputs()
            )));
        }
        let loss = network.loss();
        let expected_classes = match loss {
            Loss::Bce => Some(2),
            Loss::Ce => Some(network.outputs()),
            Loss::Sse | Loss::Mse => None,
        };
        if self.classes.as_ref().map(Vec::len) != expected_classes {
            return Err(invalid(format!(
                "{} classes for a {loss} network of {} outputs",
                self.classes.as_ref().map_or(0, Vec::len),
                network.outputs()
            )));
        }
        // A repeated feature would be fed twice, and a repeated class or category could never be told apart.
        let names = [("feature", &self.features)]
            .into_iter()
            .chain(self.classes.as_ref().map(|c| ("class", c)))
            .chain(self.categories.values().map(|c| ("category", c)));
        for (what, names) in names {
            if let Some(name) = repeated(names) {
                return Err(invalid(format!(
                    "the {what} {} is named twice; each needs its own name",
                    quote(name)
                )));
            }
        }
        if let Some(levels) = self.categories.values().find(|levels| levels.is_empty()) {
            return Err(invalid(format!(
                "a text feature has {} categories; it needs at least one",
                levels.len()
            )));
        }
        let unusable = self
            .standardize
            .as_ref()
            .and_then(|s| s.unusable(self.inputs(), "input"));
        let target_unusable = match (&self.target_standardize, &self.classes) {
            (Some(_), Some(_)) => Some("a classifier's target is never scaled".to_string()),
            (Some(s), None) => s.unusable(network.outputs(), "output"),
            (None, _) => None,
        };
        match unusable.or(target_unusable) {
            Some(reason) => Err(invalid(reason)),
            None => Ok(()),
        }
    }

    /// Records the mean and standard deviation of each input of `table` (one-hot inputs are left as they
    /// are) and, for regression with `scale_target` (an unbounded output), of the target.
    pub fn fit_standardize(&mut self, table: &Table, scale_target: bool) -> Result<()> {
        (self.standardize, self.target_standardize) = (None, None);
        let mut names = Vec::with_capacity(self.inputs());
        let mut one_hot = Vec::with_capacity(self.inputs());
        for feature in &self.features {
            let width = self.width(feature);
            names.extend(std::iter::repeat_n(feature.as_str(), width));
            one_hot.extend(std::iter::repeat_n(
                self.categories.contains_key(feature),
                width,
            ));
        }
        let inputs = self.raw_features(table)?;
        let standardize = Standardize::fit(&inputs, &names, &one_hot, &table.source)?;
        let target_standardize = match self.classes {
            Some(_) => None,
            None if !scale_target => None,
            None => {
                // Regression: one output, the value, read unscaled (no target statistics yet).
                let targets = self.targets(table, Loss::Mse)?;
                Some(Standardize::fit(
                    &targets,
                    &[&self.target],
                    &[false],
                    &table.source,
                )?)
            }
        };
        (self.standardize, self.target_standardize) = (Some(standardize), target_standardize);
        Ok(())
    }

    /// The feature columns of every row, by name (other columns are ignored), standardised if fitted.
    pub fn features(&self, table: &Table) -> Result<Vec<f32>> {
        Ok(self.standardized(self.raw_features(table)?))
    }

    /// Rows of raw feature values scaled as the training rows were (unchanged without standardisation).
    pub fn standardized(&self, mut rows: Vec<f32>) -> Vec<f32> {
        if let Some(s) = &self.standardize {
            s.apply(&mut rows);
        }
        rows
    }

    /// A network's outputs in the target's own units: regression outputs scaled back where the target was
    /// standardised; anything else as it is.
    pub fn in_target_units(&self, mut outputs: Vec<f32>) -> Vec<f32> {
        if let Some(s) = &self.target_standardize {
            s.invert(&mut outputs);
        }
        outputs
    }

    /// The inputs of every row as they are in the table: a numeric feature's value, or a text feature's
    /// one-hot row.
    pub fn raw_features(&self, table: &Table) -> Result<Vec<f32>> {
        let role = format!("one of the feature columns {}", quote_list(&self.features));
        let columns = (self.features.iter())
            .zip(table.columns(&self.features, &role)?)
            .map(|(name, column)| {
                let levels = self.categories.get(name).map(|levels| {
                    let positions: HashMap<&str, usize> = levels
                        .iter()
                        .enumerate()
                        .map(|(i, l)| (l.as_str(), i))
                        .collect();
                    (levels, positions)
                });
                (column, levels)
            })
            .collect::<Vec<_>>();
        let mut values = Vec::with_capacity(table.rows.len() * self.inputs());
        for row in &table.rows {
            for (c, levels) in &columns {
                let Some((levels, positions)) = levels else {
                    values.push(table.number(row, *c)?);
                    continue;
                };
                let cell = &row.cells[*c];
                let position = *positions.get(cell.as_str()).ok_or_else(|| {
                    Error::data(
                        &table.source,
                        Some(row.line),
                        format!(
                            "column {} holds {}, a category that training did not see; its categories \
                             are {}",
                            quote(&table.header[*c]),
                            quote(cell),
                            quote_list(levels)
                        ),
                    )
                })?;
                values.extend((0..levels.len()).map(|i| f32::from(i == position)));
            }
        }
        Ok(values)
    }

    /// The targets of every row: the value for regression (standardised if fitted), 0/1 for bce, a one-hot
    /// row for ce.
    pub fn targets(&self, table: &Table, loss: Loss) -> Result<Vec<f32>> {
        let column = table.column(&self.target, "the target column")?;
        let numeric = self
            .classes
            .as_ref()
            .is_some_and(|classes| classes.iter().all(|c| number_of(c).is_some()));
        let class_index: HashMap<String, usize> = self
            .classes
            .iter()
            .flatten()
            .enumerate()
            .map(|(i, c)| (class_key(c, numeric), i))
            .collect();
        let mut values = Vec::new();
        for row in &table.rows {
            let Some(classes) = &self.classes else {
                values.push(table.number(row, column)?);
                continue;
            };
            let label = &row.cells[column];
            let class = *class_index.get(&class_key(label, numeric)).ok_or_else(|| {
                Error::data(
                    &table.source,
                    Some(row.line),
                    format!(
                        "label {} is not one of the classes {}",
                        quote(label),
                        quote_list(classes)
                    ),
                )
            })?;
            if loss == Loss::Ce {
                values.extend((0..classes.len()).map(|c| f32::from(c == class)));
            } else {
                values.push(class as f32);
            }
        }
        if let Some(s) = &self.target_standardize {
            s.apply(&mut values);
        }
        Ok(values)
    }

    /// The training set of `table` for a network with this schema and loss.
    pub fn dataset(&self, table: &Table, loss: Loss) -> Result<Dataset> {
        Ok(Dataset {
            rows: table.rows.len(),
            inputs: self.features(table)?,
            targets: self.targets(table, loss)?,
        })
    }
}

/// How a missing value is written: a cell that is empty or one of these (in any case). Missing values are
/// errors, not imputed; they only keep a column of numbers from reading as text.
const MISSING: [&str; 5] = ["NA", "N/A", "nan", "null", "?"];

fn is_missing(cell: &str) -> bool {
    cell.is_empty() || MISSING.iter().any(|m| cell.eq_ignore_ascii_case(m))
}

/// Whether a cell is a number (finite or not: an infinite one is an error of its own).
fn is_number(cell: &str) -> bool {
    !is_missing(cell) && cell.parse::<f32>().is_ok()
}

/// Whether a cell is a number written with a decimal comma ("1,5"), as some locales write them.
fn has_decimal_comma(cell: &str) -> bool {
    cell.matches(',').count() == 1
        && !cell.contains('.')
        && (cell.replace(',', ".").parse::<f32>()).is_ok_and(f32::is_finite)
}

/// Whether a column holds numbers: where its numbers (those with a decimal comma too) outnumber its other
/// cells, missing values aside, or it has nothing else. Such a column is never one-hot encoded: a cell in
/// it that holds no number is an error ([`not_numbers`]).
fn is_numeric(table: &Table, column: usize) -> bool {
    let (mut numbers, mut words) = (0usize, 0usize);
    for row in &table.rows {
        let cell = row.cells[column].as_str();
        if is_number(cell) || has_decimal_comma(cell) {
            numbers += 1;
        } else if !is_missing(cell) {
            words += 1;
        }
    }
    numbers > words || words == 0
}

/// The first row whose cell in `column` is text: neither a number nor a missing value.
fn first_word(table: &Table, column: usize) -> Option<&Row> {
    (table.rows.iter())
        .find(|row| !is_number(&row.cells[column]) && !is_missing(&row.cells[column]))
}

/// Refuses a column of numbers that has cells without one ([`not_numbers`]).
fn check_numbers(table: &Table, column: usize) -> Result<()> {
    match table.rows.iter().all(|row| is_number(&row.cells[column])) {
        true => Ok(()),
        false => Err(not_numbers(table, column)),
    }
}

/// The rows of a column of numbers that a message lists by their cell and line; the rest are counted.
const LISTED_ROWS: usize = 3;

/// Why a column that must hold numbers does not: a number written with a decimal comma, or the rows that
/// hold no number (missing values and stray text), which are to be removed or filled.
fn not_numbers(table: &Table, column: usize) -> Error {
    let name = quote(&table.header[column]);
    let cells = (table.rows.iter()).map(|row| (row.cells[column].as_str(), row.line));
    if let Some((cell, line)) = cells.clone().find(|(cell, _)| has_decimal_comma(cell)) {
        return Error::data(
            &table.source,
            Some(line),
            format!(
                "column {name} holds {}, a number with a decimal comma; write numbers with a decimal point \
                 (replace the commas with points)",
                quote(cell)
            ),
        );
    }
    let gaps: Vec<(&str, u64)> = cells.filter(|(cell, _)| !is_number(cell)).collect();
    let mut listed: Vec<String> = (gaps.iter().take(LISTED_ROWS))
        .map(|(cell, line)| format!("{} on line {line}", quote(cell)))
        .collect();
    if gaps.len() > LISTED_ROWS {
        listed.push(format!("… {} more", gaps.len() - LISTED_ROWS));
    }
    let rows = match gaps.len() {
        1 => "1 row holds".to_string(),
        n => format!("{n} rows hold"),
    };
    Error::data(
        &table.source,
        None,
        format!(
            "column {name} is numeric, but {rows} no number ({}); remove or fill those rows",
            listed.join(", ")
        ),
    )
}

/// How a feature column becomes inputs.
enum Encoding<'a> {
    /// One input, its value.
    Number,
    /// One-hot over these categories, sorted.
    OneHot(Vec<String>),
    /// None: text with too many distinct values to encode (this many, or more where [`MAX_CATEGORIES`] is
    /// passed); `example` is the first row with text.
    TooManyValues { distinct: usize, example: &'a Row },
}

/// How a feature column is encoded: a column of numbers as one input (an error where a cell holds none);
/// a text column over its distinct values, where they are at most [`MAX_CATEGORIES`] and fewer than half
/// the rows.
fn encoding(table: &Table, column: usize) -> Result<Encoding<'_>> {
    if is_numeric(table, column) {
        check_numbers(table, column)?;
        return Ok(Encoding::Number);
    }
    let mut distinct = BTreeSet::new();
    for row in &table.rows {
        distinct.insert(row.cells[column].as_str());
        if distinct.len() > MAX_CATEGORIES {
            break;
        }
    }
    if distinct.len() <= MAX_CATEGORIES && 2 * distinct.len() < table.rows.len() {
        return Ok(Encoding::OneHot(
            distinct.into_iter().map(str::to_string).collect(),
        ));
    }
    Ok(Encoding::TooManyValues {
        distinct: distinct.len(),
        example: first_word(table, column)
            .expect("a column that is not numeric has a cell of text"),
    })
}

/// The error for text feature columns that cannot be encoded (`unusable`: each column with its
/// [`Encoding::TooManyValues`] counts), with the option that leaves them all out: --ignore with the
/// columns already ignored, or --features without them.
fn unusable_text(
    table: &Table,
    unusable: &[(usize, usize, &Row)],
    columns: &FeatureColumns,
) -> Error {
    let names: Vec<&str> = (unusable.iter())
        .map(|&(c, ..)| table.header[c].as_str())
        .collect();
    let described: Vec<String> = (unusable.iter())
        .map(|&(c, distinct, example)| {
            let count = match distinct {
                n if n > MAX_CATEGORIES => format!("more than {MAX_CATEGORIES}"),
                n => n.to_string(),
            };
            format!(
                "{} ({} on line {}, {count} distinct values)",
                quote(&table.header[c]),
                quote(&example.cells[c]),
                example.line
            )
        })
        .collect();
    let (subject, them) = match &described[..] {
        [column] => (format!("column {column} holds"), "it"),
        _ => (format!("columns {} hold", described.join(", ")), "them"),
    };
    // Every column to leave out, in the header's order.
    let ignore = |ignored: &[String]| {
        let left_out: Vec<&str> = (table.header.iter().map(String::as_str))
            .filter(|name| names.contains(name) || ignored.iter().any(|i| i == name))
            .collect();
        format!("leave {them} out with --ignore {}", left_out.join(","))
    };
    let advice = match columns {
        FeatureColumns::AllButTarget => ignore(&[]),
        FeatureColumns::AllBut(ignored) => ignore(ignored),
        FeatureColumns::Only(chosen) => {
            let kept: Vec<&str> = (chosen.iter().map(String::as_str))
                .filter(|name| !names.contains(name))
                .collect();
            match kept.is_empty() {
                true => format!("leave {them} out of --features"),
                false => format!("leave {them} out with --features {}", kept.join(",")),
            }
        }
    };
    Error::data(
        &table.source,
        None,
        format!(
            "{subject} text, not numbers, with too many distinct values to encode as categories (at most \
             {MAX_CATEGORIES}, and fewer than half the {} rows); {advice}",
            table.rows.len(),
        ),
    )
}

/// A label's value where it is a finite number.
fn number_of(label: &str) -> Option<f64> {
    label.parse::<f64>().ok().filter(|v| v.is_finite())
}

/// What a class is known by: in a column of numbers, the number's value written one way ("1.0" and "1" are
/// "1", "-0" is "0"); otherwise the label's text.
fn class_key(label: &str, numeric: bool) -> String {
    match number_of(label).filter(|_| numeric) {
        // Adding 0 turns −0 into +0.
        Some(value) => (value + 0.0).to_string(),
        None => label.to_string(),
    }
}

/// The first name that appears twice in `names`.
fn repeated(names: &[String]) -> Option<&String> {
    let mut seen = HashSet::with_capacity(names.len());
    names.iter().find(|name| !seen.insert(name.as_str()))
}

/// Splits `rows` row numbers into a training and a held-out part, `test_fraction` of them held out, in an
/// order drawn from `seed`.
pub fn split(rows: usize, test_fraction: f32, seed: u64) -> Result<(Vec<usize>, Vec<usize>)> {
    if !(0.0..1.0).contains(&test_fraction) {
        return Err(Error::invalid(
            "test-split",
            crate::error::number(test_fraction),
            "hold out a fraction from 0 up to, not including, 1, e.g. 0.2",
        ));
    }
    let mut order: Vec<usize> = (0..rows).collect();
    if test_fraction > 0.0 {
        order.shuffle(&mut StdRng::seed_from_u64(seed ^ 0x5EED_5EED));
    }
    let test = ((rows as f32 * test_fraction).round() as usize).min(rows.saturating_sub(1));
    let train = order.split_off(test);
    Ok((train, order))
}

/// The class a classifier's output row (or a target row) stands for: for bce the one output against 0.5,
/// for ce the largest. Regression rows have none.
pub fn class_of(loss: Loss, row: &[f32]) -> Option<usize> {
    match loss {
        Loss::Bce => Some(usize::from(row[0] >= 0.5)),
        Loss::Ce => row
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.total_cmp(b.1))
            .map(|(i, _)| i),
        Loss::Sse | Loss::Mse => None,
    }
}

/// The share of rows whose predicted class is the target's; None for regression losses.
pub fn accuracy(loss: Loss, outputs: &[f32], targets: &[f32], cols: usize) -> Option<f64> {
    if !loss.is_classification() {
        return None;
    }
    let rows = targets.len() / cols.max(1);
    let correct = outputs
        .chunks(cols)
        .zip(targets.chunks(cols))
        .filter(|(o, y)| class_of(loss, o) == class_of(loss, y))
        .count();
    Some(correct as f64 / rows.max(1) as f64)
}
