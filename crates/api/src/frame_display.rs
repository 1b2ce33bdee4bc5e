//! pandas-style text rendering of a frame held as an Arrow [`RecordBatch`]: what
//! `print(df)` / `repr(df)` shows in a plain Python session (pandas 2/3 defaults:
//! `max_rows` 60, `min_rows` 10, `max_colwidth` 50, `precision` 6, terminal width 80).
//!
//! A port of `pandas/io/formats/format.py` (`DataFrameFormatter`, `format_array`,
//! `FloatArrayFormatter`, `_trim_zeros_float`, `_make_fixed_width`) and
//! `pandas/io/formats/string.py` (`StringFormatter`). Columns are shown with the dtype
//! pandas would give them: an integer column with nulls prints as float64 (`NaN`), a
//! boolean column with nulls as object (`True`/`NaN`), strings as object/`str`
//! (missing: `NaN`), dates and timestamps as datetime64 (missing: `NaT`).

use arrow::array::{Array, ArrayRef, AsArray, UInt64Array};
use arrow::compute::{cast, take};
use arrow::datatypes::{DataType, Float64Type, Int64Type, TimeUnit, UInt64Type};
use arrow::record_batch::RecordBatch;
use arrow::util::display::{ArrayFormatter, FormatOptions};

const MAX_ROWS: usize = 60;
const MIN_ROWS: usize = 10;
const MAX_COLWIDTH: usize = 50;
const TERMINAL_WIDTH: usize = 80;
const PRECISION: usize = 6;
const MAX_SEQ_ITEMS: usize = 100;
const NS_PER_DAY: i128 = 86_400_000_000_000;

/// Render `batch` like pandas; its first `index_columns` columns are the (multi-)index,
/// otherwise a default RangeIndex is shown.
pub(crate) fn format_frame(batch: &RecordBatch, index_columns: usize) -> String {
    let schema = batch.schema();
    let k = index_columns.min(batch.num_columns());
    let nrows = batch.num_rows();
    let names: Vec<String> = schema.fields().iter().map(|f| escape(f.name())).collect();
    let (index_names, labels) = names.split_at(k);
    let truncated_v = nrows > MAX_ROWS;
    let rows: Vec<usize> =
        if truncated_v { (0..MIN_ROWS / 2).chain(nrows - MIN_ROWS / 2..nrows).collect() } else { (0..nrows).collect() };
    let dims = format!("\n\n[{nrows} rows x {} columns]", labels.len());
    if nrows == 0 || labels.is_empty() {
        let all: Vec<usize> = (0..nrows.min(MAX_SEQ_ITEMS + 1)).collect();
        let index: Vec<Column> = batch.columns()[..k].iter().map(|c| Column::new(c, &all).into_pandas()).collect();
        let items: Vec<String> = (0..all.len())
            .map(|r| match index.as_slice() {
                [] => r.to_string(),
                [one] => one.cells[r].py_str(),
                many => format!("({})", many.iter().map(|c| c.cells[r].py_str()).collect::<Vec<_>>().join(", ")),
            })
            .collect();
        let text = format!("Empty DataFrame\nColumns: {}\nIndex: {}", seq(labels), seq(&items));
        return if truncated_v { text + &dims } else { text };
    }
    let show_names = index_names.iter().any(|n| !n.is_empty());

    // the index column: one left-justified block per level, names on a second line
    let mut levels: Vec<Vec<String>> = if k == 0 {
        vec![rows.iter().map(|r| r.to_string()).collect()]
    } else {
        let index = batch.columns()[..k].iter();
        index.map(|full| Column::new(full, &rows).format_index(k > 1, full)).collect()
    };
    if k > 1 {
        sparsify(&mut levels);
    }
    let levels: Vec<Vec<String>> = levels
        .into_iter()
        .enumerate()
        .map(|(i, lvl)| {
            let mut v = if show_names { vec![index_names[i].clone()] } else { vec![] };
            v.extend(lvl);
            fixed_width(v, false, 0).0
        })
        .collect();
    let mut strcols = vec![std::iter::once(String::new()).chain(adjoin(&levels)).collect::<Vec<_>>()];

    let int_labels = labels.iter().all(|l| l.parse::<i64>().is_ok_and(|v| v.to_string() == *l));
    let labels = if int_labels {
        trim_front(
            fixed_width(
                labels.iter().map(|l| if l.starts_with('-') { l.clone() } else { format!(" {l}") }).collect(),
                false,
                0,
            )
            .0,
        )
    } else {
        labels.to_vec()
    };
    for (col, label) in batch.columns()[k..].iter().zip(labels) {
        let col = Column::new(col, &rows).into_pandas();
        let (values, numeric) = col.format_values();
        let mut header = vec![if numeric { format!(" {label}") } else { label }];
        if show_names {
            header.push(String::new());
        }
        let header_width = header.iter().map(|h| len(h)).max().unwrap_or(0);
        let (values, max_len) = fixed_width(values, true, header_width);
        let max_len = max_len.max(header_width);
        strcols.push(header.iter().map(|h| rjust(h, max_len)).chain(values).collect());
    }

    if truncated_v {
        let at = MIN_ROWS / 2 + 1 + usize::from(show_names);
        for (i, col) in strcols.iter_mut().enumerate() {
            let w = col.get(MIN_ROWS / 2).map_or(0, |s| len(s));
            let dots = if w > 3 { "..." } else { ".." };
            col.insert(at.min(col.len()), if i == 0 { ljust(dots, w) } else { rjust(dots, w) });
        }
    }
    let (text, truncated_h) = fit_to_width(strcols);
    if truncated_v || truncated_h {
        text + &dims
    } else {
        text
    }
}

/// One displayed value, as pandas holds it.
#[derive(Clone, Debug, PartialEq)]
enum Cell {
    Null,
    Int(i128),
    Float(f64),
    Bool(bool),
    Text(String),
    /// Nanoseconds since the epoch.
    Time(i128),
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Kind {
    Int,
    Float,
    Float32,
    Bool,
    Str,
    Time,
    Object,
}

/// The displayed rows of one column, plus whether the whole column has nulls.
#[derive(Debug)]
struct Column {
    kind: Kind,
    has_nulls: bool,
    cells: Vec<Cell>,
}

impl Column {
    fn new(col: &ArrayRef, rows: &[usize]) -> Column {
        let has_nulls = col.null_count() > 0;
        // work on the displayed rows only
        let idx = UInt64Array::from_iter_values(rows.iter().map(|&r| r as u64));
        let (col, rows) = match take(col.as_ref(), &idx, None) {
            Ok(taken) => (taken, (0..rows.len()).collect::<Vec<_>>()),
            Err(_) => (col.clone(), rows.to_vec()),
        };
        let (col, rows) = (&col, rows.as_slice());
        let cells = |f: &dyn Fn(usize) -> Cell| -> Vec<Cell> {
            rows.iter().map(|&r| if col.is_valid(r) { f(r) } else { Cell::Null }).collect()
        };
        let as_i64 = || cast(col, &DataType::Int64).ok();
        let time = |factor: i128| {
            let a = as_i64()?;
            let a = a.as_primitive_opt::<Int64Type>()?;
            Some((Kind::Time, cells(&|r| Cell::Time(i128::from(a.value(r)) * factor))))
        };
        use DataType::*;
        let converted: Option<(Kind, Vec<Cell>)> = match col.data_type() {
            Int8 | Int16 | Int32 | Int64 | UInt8 | UInt16 | UInt32 => as_i64().and_then(|a| {
                let a = a.as_primitive_opt::<Int64Type>()?;
                Some((Kind::Int, cells(&|r| Cell::Int(a.value(r).into()))))
            }),
            UInt64 => {
                (col.as_primitive_opt::<UInt64Type>()).map(|a| (Kind::Int, cells(&|r| Cell::Int(a.value(r).into()))))
            }
            dt @ (Float16 | Float32 | Float64) => {
                let kind = if *dt == Float64 { Kind::Float } else { Kind::Float32 };
                cast(col, &Float64).ok().and_then(|a| {
                    let a = a.as_primitive_opt::<Float64Type>()?;
                    let nan_is_null =
                        |r: usize| Some(a.value(r)).filter(|v| !v.is_nan()).map_or(Cell::Null, Cell::Float);
                    Some((kind, cells(&nan_is_null)))
                })
            }
            Boolean => col.as_boolean_opt().map(|a| (Kind::Bool, cells(&|r| Cell::Bool(a.value(r))))),
            Utf8 | LargeUtf8 | Utf8View => cast(col, &Utf8).ok().and_then(|a| {
                let a = a.as_string_opt::<i32>()?;
                Some((Kind::Str, cells(&|r| Cell::Text(escape(a.value(r))))))
            }),
            Date32 => time(NS_PER_DAY),
            Date64 | Timestamp(TimeUnit::Millisecond, _) => time(1_000_000),
            Timestamp(TimeUnit::Second, _) => time(1_000_000_000),
            Timestamp(TimeUnit::Microsecond, _) => time(1_000),
            Timestamp(TimeUnit::Nanosecond, _) => time(1),
            _ => None,
        };
        // anything else (decimals, lists, ...) is an object column of Python values
        let (kind, cells) = converted.unwrap_or_else(|| {
            let opts = FormatOptions::default();
            let fmt = ArrayFormatter::try_new(col.as_ref(), &opts).ok();
            let text = |r: usize| {
                fmt.as_ref().map_or_else(String::new, |f| escape(&f.value(r).try_to_string().unwrap_or_default()))
            };
            (
                Kind::Object,
                rows.iter().map(|&r| Cell::Text(if col.is_valid(r) { text(r) } else { "None".into() })).collect(),
            )
        });
        Column { kind, has_nulls, cells }
    }

    /// The numpy dtype pandas gives a column with nulls: int -> float64, bool -> object.
    fn into_pandas(self) -> Column {
        match (self.kind, self.has_nulls) {
            (Kind::Int, true) => {
                let cells = self
                    .cells
                    .into_iter()
                    .map(|c| if let Cell::Int(v) = c { Cell::Float(v as f64) } else { c })
                    .collect();
                Column { kind: Kind::Float, has_nulls: true, cells }
            }
            (Kind::Bool, true) => Column { kind: Kind::Object, ..self },
            _ => self,
        }
    }

    /// `format_array` with a leading space; also whether the dtype is numeric
    /// (pandas then prefixes the header with a space too).
    fn format_values(&self) -> (Vec<String>, bool) {
        match self.kind {
            Kind::Int => (self.cells.iter().map(Cell::py_int).collect(), true),
            Kind::Float | Kind::Float32 => (float_strings(&self.cells, "NaN", self.kind == Kind::Float32), true),
            Kind::Bool => (self.cells.iter().map(|c| format!(" {}", c.py_str())).collect(), true),
            Kind::Time => (time_strings(&self.cells), false),
            Kind::Str | Kind::Object => (
                self.cells
                    .iter()
                    .map(|c| format!(" {}", if *c == Cell::Null { "NaN".into() } else { c.py_str() }))
                    .collect(),
                false,
            ),
        }
    }

    /// `Index._format_flat` of this column as an index level; a MultiIndex level
    /// shows missing keys as `NaN` (`nan` for strings, `NaT` for times).
    fn format_index(&self, multi: bool, full: &ArrayRef) -> Vec<String> {
        let mut col = Column { kind: self.kind, has_nulls: self.has_nulls, cells: self.cells.clone() }.into_pandas();
        let is_zero = |c: &Cell| matches!(c, Cell::Float(v) if *v == 0.0);
        if multi && col.cells.iter().any(|c| *c == Cell::Null || is_zero(c)) {
            let all = Column::new(full, &(0..full.len()).collect::<Vec<_>>()).into_pandas();
            // a level holds one zero, signed like the first one in the column
            if let Some(zero) = all.cells.iter().find(|c| is_zero(c)) {
                col.cells = col.cells.into_iter().map(|c| if is_zero(&c) { zero.clone() } else { c }).collect();
            }
            // pandas formats `level.take(codes)`, where a missing key's code -1 takes the
            // level's last (largest) value; that value still counts for widths and format
            let largest = |a: &&Cell, b: &&Cell| match (a, b) {
                (Cell::Float(x), Cell::Float(y)) => x.total_cmp(y),
                (Cell::Time(x), Cell::Time(y)) => x.cmp(y),
                _ => std::cmp::Ordering::Equal,
            };
            if let Some(fill) = all.cells.iter().filter(|c| **c != Cell::Null).max_by(largest).cloned() {
                col.cells = col.cells.into_iter().map(|c| if c == Cell::Null { fill.clone() } else { c }).collect();
            }
        }
        let spaced = |c: &Cell| format!(" {}", if *c == Cell::Null { "NaN".into() } else { c.py_str() });
        let out = match col.kind {
            Kind::Int => trim_front(fixed_width(col.cells.iter().map(Cell::py_int).collect(), false, 0).0),
            Kind::Float | Kind::Float32 => {
                trim_front(fixed_width(float_strings(&col.cells, " NaN", col.kind == Kind::Float32), false, 0).0)
            }
            Kind::Bool => trim_front(fixed_width(col.cells.iter().map(spaced).collect(), false, 0).0),
            Kind::Str | Kind::Object => trim_front(col.cells.iter().map(spaced).collect()),
            Kind::Time => time_strings(&col.cells),
        };
        let na = match self.kind {
            Kind::Str => "nan",
            Kind::Time => "NaT",
            _ => "NaN",
        };
        out.into_iter()
            .zip(&self.cells)
            .map(|(s, c)| if multi && *c == Cell::Null { na.to_string() } else { s })
            .collect()
    }
}

impl Cell {
    /// Python's `f"{x: d}"`.
    fn py_int(&self) -> String {
        match self {
            Cell::Int(v) if *v < 0 => v.to_string(),
            Cell::Int(v) => format!(" {v}"),
            other => format!(" {}", other.py_str()),
        }
    }

    /// Python's `str()` of the value pandas holds.
    fn py_str(&self) -> String {
        match self {
            Cell::Null => "nan".into(),
            Cell::Int(v) => v.to_string(),
            Cell::Float(v) => py_float(*v),
            Cell::Bool(b) => (if *b { "True" } else { "False" }).into(),
            Cell::Text(s) => s.clone(),
            Cell::Time(ns) => format_time(*ns, 0, false),
        }
    }
}

/// `FloatArrayFormatter`: `{: .6f}`, trailing zeros trimmed equally; `{: .6e}` when
/// values are tiny, or huge and long.
fn float_strings(cells: &[Cell], na: &str, is_f32: bool) -> Vec<String> {
    let vals: Vec<Option<f64>> =
        cells.iter().map(|c| if let Cell::Float(v) = c { Some(*v).filter(|v| !v.is_nan()) } else { None }).collect();
    let render = |sci: bool| -> Vec<String> {
        vals.iter()
            .map(|v| match v {
                None => na.to_string(),
                Some(x) => {
                    let sign = if x.is_sign_negative() { "-" } else { " " };
                    if x.is_infinite() {
                        format!("{sign}inf")
                    } else if sci {
                        let s = format!("{:.*e}", PRECISION, x.abs());
                        let (m, e) = s.split_once('e').unwrap_or((&s, "0"));
                        let e: i32 = e.parse().unwrap_or(0);
                        format!("{sign}{m}e{}{:02}", if e < 0 { '-' } else { '+' }, e.unsigned_abs())
                    } else {
                        format!("{sign}{:.*}", PRECISION, x.abs())
                    }
                }
            })
            .collect()
    };
    let fixed = trim_zeros(render(false));
    let small_cut = if is_f32 { f64::from(1e-6f32) } else { 1e-6 };
    let abs = || vals.iter().flatten().map(|v| v.abs());
    let too_long = fixed.iter().map(|s| len(s)).max().unwrap_or(0) > PRECISION + 6;
    if abs().any(|v| v > 0.0 && v < small_cut) || (too_long && abs().any(|v| v > 1e6)) {
        render(true)
    } else {
        fixed
    }
}

/// `_trim_zeros_float`: drop trailing zeros equally from all decimal numbers.
fn trim_zeros(mut strs: Vec<String>) -> Vec<String> {
    let is_num: Vec<bool> = strs
        .iter()
        .map(|s| {
            let t = s.trim_start().trim_start_matches(['+', '-']);
            let (i, f) = t.split_once('.').unwrap_or(("", "x"));
            !i.is_empty() && i.bytes().all(|b| b.is_ascii_digit()) && f.bytes().all(|b| b.is_ascii_digit())
        })
        .collect();
    if !is_num.contains(&true) {
        return strs;
    }
    while strs.iter().zip(&is_num).all(|(s, &n)| !n || s.ends_with('0')) {
        for (s, _) in strs.iter_mut().zip(&is_num).filter(|(_, &n)| n) {
            s.pop();
        }
    }
    for (s, _) in strs.iter_mut().zip(&is_num).filter(|(s, &n)| n && s.ends_with('.')) {
        s.push('0');
    }
    strs
}

/// datetime64 formatting: dates only when every value is midnight, otherwise
/// seconds with as many fraction digits (3, 6 or 9) as the values need.
fn time_strings(cells: &[Cell]) -> Vec<String> {
    let ns: Vec<i128> = cells.iter().filter_map(|c| if let Cell::Time(v) = c { Some(*v) } else { None }).collect();
    let needs = |unit: i128| ns.iter().any(|v| v.rem_euclid(unit) != 0);
    let dates_only = !needs(NS_PER_DAY);
    let digits = if needs(1_000) {
        9
    } else if needs(1_000_000) {
        6
    } else if needs(1_000_000_000) {
        3
    } else {
        0
    };
    cells
        .iter()
        .map(|c| if let Cell::Time(v) = c { format_time(*v, digits, dates_only) } else { "NaT".into() })
        .collect()
}

fn format_time(ns: i128, digits: usize, date_only: bool) -> String {
    let days = ns.div_euclid(NS_PER_DAY);
    let rem = ns.rem_euclid(NS_PER_DAY);
    // Howard Hinnant's civil_from_days
    let z = days + 719_468;
    let (era, doe) = (z.div_euclid(146_097), z.rem_euclid(146_097));
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i128::from(m <= 2);
    let date = format!("{y:04}-{m:02}-{d:02}");
    if date_only {
        return date;
    }
    let secs = rem / 1_000_000_000;
    let mut s = format!("{date} {:02}:{:02}:{:02}", secs / 3600, secs / 60 % 60, secs % 60);
    if digits > 0 {
        let frac = format!("{:09}", rem % 1_000_000_000);
        s.push('.');
        s.push_str(&frac[..digits]);
    }
    s
}

/// Python's `repr(float)`: shortest round-trip digits, scientific outside [1e-4, 1e16).
fn py_float(v: f64) -> String {
    if v.is_nan() {
        return "nan".into();
    }
    if v.is_infinite() {
        return (if v < 0.0 { "-inf" } else { "inf" }).into();
    }
    let s = format!("{v:e}");
    let (m, e) = s.split_once('e').unwrap_or((&s, "0"));
    let e: i32 = e.parse().unwrap_or(0);
    if (-4..16).contains(&e) {
        let p = format!("{v}");
        if p.contains('.') {
            p
        } else {
            p + ".0"
        }
    } else {
        format!("{m}e{}{:02}", if e < 0 { '-' } else { '+' }, e.unsigned_abs())
    }
}

/// `pprint_thing` escapes.
fn escape(s: &str) -> String {
    s.replace('\t', "\\t").replace('\r', "\\r").replace('\n', "\\n")
}

/// `pprint_thing` of a sequence: `[a, b, ...]`, at most 100 items.
fn seq(items: &[String]) -> String {
    let mut shown: Vec<&str> = items.iter().take(MAX_SEQ_ITEMS).map(String::as_str).collect();
    if items.len() > MAX_SEQ_ITEMS {
        shown.push("...");
    }
    format!("[{}]", shown.join(", "))
}

fn len(s: &str) -> usize {
    s.chars().count()
}
fn ljust(s: &str, w: usize) -> String {
    format!("{s}{}", " ".repeat(w.saturating_sub(len(s))))
}
fn rjust(s: &str, w: usize) -> String {
    format!("{}{s}", " ".repeat(w.saturating_sub(len(s))))
}

/// `_make_fixed_width`: justify to a common width of at least `minimum`, cutting
/// values longer than `max_colwidth` to end in `...`.
fn fixed_width(strs: Vec<String>, right: bool, minimum: usize) -> (Vec<String>, usize) {
    let Some(max) = strs.iter().map(|s| len(s)).max() else {
        return (strs, 0);
    };
    let max = max.max(minimum).min(MAX_COLWIDTH);
    let keep = max.saturating_sub(3);
    let out = strs
        .iter()
        .map(|s| {
            let s = if len(s) > max {
                s.chars().take(keep).chain("...".chars().take(max - keep)).collect()
            } else {
                s.clone()
            };
            if right {
                rjust(&s, max)
            } else {
                ljust(&s, max)
            }
        })
        .collect();
    (out, max)
}

/// `trim_front`: remove leading spaces common to all strings.
fn trim_front(strs: Vec<String>) -> Vec<String> {
    let n = strs.iter().map(|s| len(s) - len(s.trim_start())).min().unwrap_or(0);
    strs.into_iter().map(|s| s.chars().skip(n).collect()).collect()
}

/// `sparsify_labels`: blank a level's label when it and all outer labels repeat.
fn sparsify(levels: &mut [Vec<String>]) {
    let nrows = levels.first().map_or(0, Vec::len);
    let last = levels.len().saturating_sub(1);
    for r in (1..nrows).rev() {
        for level in levels.iter_mut().take(last) {
            if level[r] != level[r - 1] {
                break;
            }
            level[r] = String::new();
        }
    }
}

/// `printing.adjoin(1, ...)`: every column but the last padded to its width + 1.
fn adjoin(cols: &[Vec<String>]) -> Vec<String> {
    let nrows = cols.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = cols.iter().map(|c| c.iter().map(|s| len(s)).max().unwrap_or(0)).collect();
    (0..nrows)
        .map(|r| {
            let mut line = String::new();
            for (i, col) in cols.iter().enumerate() {
                let w = if i + 1 < cols.len() { widths[i] + 1 } else { widths[i] };
                let pad = nrows - col.len();
                line.push_str(&ljust(if r < pad { "" } else { &col[r - pad] }, w));
            }
            line
        })
        .collect()
}

/// `_fit_strcols_to_terminal_width`: drop middle columns (shown as `...`) until the
/// frame fits in the terminal width. Also returns whether columns were dropped.
fn fit_to_width(mut strcols: Vec<Vec<String>>) -> (String, bool) {
    let mut lens: Vec<i64> = strcols.iter().map(|c| c.iter().map(|s| len(s) as i64).max().unwrap_or(0)).collect();
    let mut n = lens.len();
    let mut dif = lens.iter().sum::<i64>() + n as i64 - 1 - TERMINAL_WIDTH as i64 + 1;
    let data_cols = n - 1;
    if dif > 0 {
        dif += 5;
        while dif > 0 && n > 1 {
            // Python's round(n / 2): halves go to the even neighbour
            let mid = if n % 2 == 1 && (n / 2) % 2 == 1 { n / 2 + 1 } else { n / 2 };
            dif -= lens.remove(mid) + 1;
            n -= 1;
        }
        let fitted = (n - 1).max(2);
        if fitted < data_cols {
            let half = fitted / 2;
            let rows = strcols[0].len();
            strcols.drain(half + 1..strcols.len() - half);
            strcols.insert(half + 1, vec![" ...".to_string(); rows]);
            return (adjoin(&strcols).join("\n"), true);
        }
    }
    (adjoin(&strcols).join("\n"), false)
}

#[cfg(test)]
mod tests {
    //! Expected strings are pandas 3.1 `repr(df)` (plain Python, 80-column terminal)
    //! of the quoted frame.
    use super::*;
    use arrow::array::*;
    use std::sync::Arc;

    fn check(cols: Vec<(&str, ArrayRef)>, index_columns: usize, expected: &str) {
        let batch = RecordBatch::try_from_iter(cols).unwrap();
        assert_eq!(format_frame(&batch, index_columns), expected);
    }

    #[test]
    fn decimals_are_objects() {
        // pd.DataFrame({'price': [Decimal('1.50'), Decimal('-22.25'), None]})
        let d = Decimal128Array::from(vec![Some(150), Some(-2225), None]).with_precision_and_scale(10, 2).unwrap();
        check(vec![("price", Arc::new(d) as ArrayRef)], 0, "    price\n0    1.50\n1  -22.25\n2    None");
    }

    #[test]
    fn brief_example() {
        // pd.DataFrame([[1, 2], [3, 4]])
        check(
            vec![
                ("0", Arc::new(Int64Array::from(vec![1, 3])) as ArrayRef),
                ("1", Arc::new(Int64Array::from(vec![2, 4])) as ArrayRef),
            ],
            0,
            r#"   0  1
0  1  2
1  3  4"#,
        );
    }

    #[test]
    fn mixed_types() {
        // pd.DataFrame({'a': [1.5, 2.0, np.nan], 'b': ['x', 'yy', np.nan], 'c': [True, False, True], 'd': np.array(['1998-09-02', '1998-01-01', 'NaT'], dtype='datetime64[s]'), 'e': [1e7, 2.5, 3.0]})
        check(
            vec![
                ("a", Arc::new(Float64Array::from(vec![Some(1.5), Some(2.0), None])) as ArrayRef),
                ("b", Arc::new(StringArray::from(vec![Some("x"), Some("yy"), None])) as ArrayRef),
                ("c", Arc::new(BooleanArray::from(vec![true, false, true])) as ArrayRef),
                ("d", Arc::new(Date32Array::from(vec![Some(10471), Some(10227), None])) as ArrayRef),
                ("e", Arc::new(Float64Array::from(vec![1e7, 2.5, 3.0])) as ArrayRef),
            ],
            0,
            r#"     a    b      c          d           e
0  1.5    x   True 1998-09-02  10000000.0
1  2.0   yy  False 1998-01-01         2.5
2  NaN  NaN   True        NaT         3.0"#,
        );
    }

    #[test]
    fn scientific_floats() {
        // pd.DataFrame({'a': [1e-7, 2.0], 'b': [123456789.123, 1.0], 'c': [0.1234567, 1.0]})
        check(
            vec![
                ("a", Arc::new(Float64Array::from(vec![1e-7, 2.0])) as ArrayRef),
                ("b", Arc::new(Float64Array::from(vec![123456789.123, 1.0])) as ArrayRef),
                ("c", Arc::new(Float64Array::from(vec![0.1234567, 1.0])) as ArrayRef),
            ],
            0,
            r#"              a             b         c
0  1.000000e-07  1.234568e+08  0.123457
1  2.000000e+00  1.000000e+00  1.000000"#,
        );
    }

    #[test]
    fn nullable_int_and_bool() {
        // pd.DataFrame({'i': [1.0, np.nan, -3.0], 'b': [True, np.nan, False], 'n': [10, 200, 3000]})
        check(
            vec![
                ("i", Arc::new(Int64Array::from(vec![Some(1), None, Some(-3)])) as ArrayRef),
                ("b", Arc::new(BooleanArray::from(vec![Some(true), None, Some(false)])) as ArrayRef),
                ("n", Arc::new(Int32Array::from(vec![10, 200, 3000])) as ArrayRef),
            ],
            0,
            r#"     i      b     n
0  1.0   True    10
1  NaN    NaN   200
2 -3.0  False  3000"#,
        );
    }

    #[test]
    fn groupby_one_key() {
        // df = pd.DataFrame({'k': ['x', 'y', 'x'], 'j': [1, 1, 2], 'v': [1.0, 2.0, 3.0]}); df.groupby('k').agg({'v': 'sum'})
        check(
            vec![
                ("k", Arc::new(StringArray::from(vec!["x", "y"])) as ArrayRef),
                ("v", Arc::new(Float64Array::from(vec![4.0, 2.0])) as ArrayRef),
            ],
            1,
            r#"     v
k     
x  4.0
y  2.0"#,
        );
    }

    #[test]
    fn groupby_two_keys() {
        // df.groupby(['k', 'j']).agg(s=('v', 'sum'), c=('v', 'count'))
        check(
            vec![
                ("k", Arc::new(StringArray::from(vec!["x", "x", "y"])) as ArrayRef),
                ("j", Arc::new(Int64Array::from(vec![1, 2, 1])) as ArrayRef),
                ("s", Arc::new(Float64Array::from(vec![1.0, 3.0, 2.0])) as ArrayRef),
                ("c", Arc::new(Int64Array::from(vec![1, 1, 1])) as ArrayRef),
            ],
            2,
            r#"       s  c
k j        
x 1  1.0  1
  2  3.0  1
y 1  2.0  1"#,
        );
    }

    #[test]
    fn truncated_rows() {
        // pd.DataFrame({'a': np.arange(100), 'b': np.arange(100) / 3, 'c': ['s%d' % i for i in range(100)]})
        check(
            vec![
                ("a", Arc::new(Int64Array::from_iter_values(0..100)) as ArrayRef),
                ("b", Arc::new(Float64Array::from_iter_values((0..100).map(|i| f64::from(i) / 3.0))) as ArrayRef),
                ("c", Arc::new(StringArray::from_iter_values((0..100).map(|i| format!("s{i}")))) as ArrayRef),
            ],
            0,
            r#"     a          b    c
0    0   0.000000   s0
1    1   0.333333   s1
2    2   0.666667   s2
3    3   1.000000   s3
4    4   1.333333   s4
..  ..        ...  ...
95  95  31.666667  s95
96  96  32.000000  s96
97  97  32.333333  s97
98  98  32.666667  s98
99  99  33.000000  s99

[100 rows x 3 columns]"#,
        );
    }

    #[test]
    fn truncated_columns() {
        // pd.DataFrame(np.arange(90).reshape(3, 30))
        check(
            vec![
                ("0", Arc::new(Int64Array::from(vec![0, 30, 60])) as ArrayRef),
                ("1", Arc::new(Int64Array::from(vec![1, 31, 61])) as ArrayRef),
                ("2", Arc::new(Int64Array::from(vec![2, 32, 62])) as ArrayRef),
                ("3", Arc::new(Int64Array::from(vec![3, 33, 63])) as ArrayRef),
                ("4", Arc::new(Int64Array::from(vec![4, 34, 64])) as ArrayRef),
                ("5", Arc::new(Int64Array::from(vec![5, 35, 65])) as ArrayRef),
                ("6", Arc::new(Int64Array::from(vec![6, 36, 66])) as ArrayRef),
                ("7", Arc::new(Int64Array::from(vec![7, 37, 67])) as ArrayRef),
                ("8", Arc::new(Int64Array::from(vec![8, 38, 68])) as ArrayRef),
                ("9", Arc::new(Int64Array::from(vec![9, 39, 69])) as ArrayRef),
                ("10", Arc::new(Int64Array::from(vec![10, 40, 70])) as ArrayRef),
                ("11", Arc::new(Int64Array::from(vec![11, 41, 71])) as ArrayRef),
                ("12", Arc::new(Int64Array::from(vec![12, 42, 72])) as ArrayRef),
                ("13", Arc::new(Int64Array::from(vec![13, 43, 73])) as ArrayRef),
                ("14", Arc::new(Int64Array::from(vec![14, 44, 74])) as ArrayRef),
                ("15", Arc::new(Int64Array::from(vec![15, 45, 75])) as ArrayRef),
                ("16", Arc::new(Int64Array::from(vec![16, 46, 76])) as ArrayRef),
                ("17", Arc::new(Int64Array::from(vec![17, 47, 77])) as ArrayRef),
                ("18", Arc::new(Int64Array::from(vec![18, 48, 78])) as ArrayRef),
                ("19", Arc::new(Int64Array::from(vec![19, 49, 79])) as ArrayRef),
                ("20", Arc::new(Int64Array::from(vec![20, 50, 80])) as ArrayRef),
                ("21", Arc::new(Int64Array::from(vec![21, 51, 81])) as ArrayRef),
                ("22", Arc::new(Int64Array::from(vec![22, 52, 82])) as ArrayRef),
                ("23", Arc::new(Int64Array::from(vec![23, 53, 83])) as ArrayRef),
                ("24", Arc::new(Int64Array::from(vec![24, 54, 84])) as ArrayRef),
                ("25", Arc::new(Int64Array::from(vec![25, 55, 85])) as ArrayRef),
                ("26", Arc::new(Int64Array::from(vec![26, 56, 86])) as ArrayRef),
                ("27", Arc::new(Int64Array::from(vec![27, 57, 87])) as ArrayRef),
                ("28", Arc::new(Int64Array::from(vec![28, 58, 88])) as ArrayRef),
                ("29", Arc::new(Int64Array::from(vec![29, 59, 89])) as ArrayRef),
            ],
            0,
            r#"   0   1   2   3   4   5   6   7   8   ...  21  22  23  24  25  26  27  28  29
0   0   1   2   3   4   5   6   7   8  ...  21  22  23  24  25  26  27  28  29
1  30  31  32  33  34  35  36  37  38  ...  51  52  53  54  55  56  57  58  59
2  60  61  62  63  64  65  66  67  68  ...  81  82  83  84  85  86  87  88  89

[3 rows x 30 columns]"#,
        );
    }

    #[test]
    fn int_labels_pad() {
        // pd.DataFrame(np.arange(22).reshape(2, 11))
        check(
            vec![
                ("0", Arc::new(Int64Array::from(vec![0, 11])) as ArrayRef),
                ("1", Arc::new(Int64Array::from(vec![1, 12])) as ArrayRef),
                ("2", Arc::new(Int64Array::from(vec![2, 13])) as ArrayRef),
                ("3", Arc::new(Int64Array::from(vec![3, 14])) as ArrayRef),
                ("4", Arc::new(Int64Array::from(vec![4, 15])) as ArrayRef),
                ("5", Arc::new(Int64Array::from(vec![5, 16])) as ArrayRef),
                ("6", Arc::new(Int64Array::from(vec![6, 17])) as ArrayRef),
                ("7", Arc::new(Int64Array::from(vec![7, 18])) as ArrayRef),
                ("8", Arc::new(Int64Array::from(vec![8, 19])) as ArrayRef),
                ("9", Arc::new(Int64Array::from(vec![9, 20])) as ArrayRef),
                ("10", Arc::new(Int64Array::from(vec![10, 21])) as ArrayRef),
            ],
            0,
            r#"   0   1   2   3   4   5   6   7   8   9   10
0   0   1   2   3   4   5   6   7   8   9  10
1  11  12  13  14  15  16  17  18  19  20  21"#,
        );
    }

    #[test]
    fn timestamps() {
        // pd.DataFrame({'t': np.array(['2020-01-01T10:00:00.5', '2020-01-02', 'NaT'], dtype='datetime64[us]')})
        check(
            vec![(
                "t",
                Arc::new(TimestampMicrosecondArray::from(vec![
                    Some(1_577_872_800_500_000),
                    Some(1_577_923_200_000_000),
                    None,
                ])) as ArrayRef,
            )],
            0,
            r#"                        t
0 2020-01-01 10:00:00.500
1 2020-01-02 00:00:00.000
2                     NaT"#,
        );
    }

    #[test]
    fn empty() {
        // pd.DataFrame({'a': [], 'b': []})
        check(
            vec![
                ("a", Arc::new(Int64Array::from(Vec::<i64>::new())) as ArrayRef),
                ("b", Arc::new(StringArray::from(Vec::<&str>::new())) as ArrayRef),
            ],
            0,
            r#"Empty DataFrame
Columns: [a, b]
Index: []"#,
        );
    }

    #[test]
    fn long_strings() {
        // pd.DataFrame({'s': ['x' * 60, 'short\tone']})
        check(
            vec![(
                "s",
                Arc::new(StringArray::from(vec![
                    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
                    "short\tone",
                ])) as ArrayRef,
            )],
            0,
            r#"                                                   s
0  xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx...
1                                         short\tone"#,
        );
    }
}
