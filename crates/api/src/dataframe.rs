//! DataFrames: `use mars::dataframe as md;`. Row-chunked Arrow record batches.
//!
//! A [`DataFrame`] is a lazy handle like a tensor: building one hashes its data
//! into a key and nothing runs until `execute`. Fetching gives a
//! [`DataFrameData`] (an Arrow [`RecordBatch`]) that prints like pandas.
//!
//! ```
//! use mars::dataframe as md;
//!
//! # fn main() -> mars::Result<()> {
//! let sess = mars::new_session()?;
//! // md.DataFrame([[1, 2], [3, 4]])
//! let df = md::DataFrame::from_rows(vec![vec![1, 2], vec![3, 4]])?;
//! assert_eq!(df.columns(), ["0", "1"]);
//! let data = df.execute_in(&sess)?.fetch_in(&sess)?;
//! assert_eq!(data.to_string(), "   0  1\n0  1  2\n1  3  4");
//! # Ok(())
//! # }
//! ```
//!
//! Named columns of any supported Arrow type come from [`DataFrame::from_columns`]
//! (or [`DataFrame::from_record_batch`]); a column with nulls prints as pandas
//! would show it:
//!
//! ```
//! use mars::arrow::array::{ArrayRef, Float64Array, StringArray};
//! use mars::dataframe as md;
//! use std::sync::Arc;
//!
//! # fn main() -> mars::Result<()> {
//! let sess = mars::new_session()?;
//! let df = md::DataFrame::from_columns(vec![
//!     ("name", Arc::new(StringArray::from(vec!["a", "b"])) as ArrayRef),
//!     ("v", Arc::new(Float64Array::from(vec![Some(1.5), None])) as ArrayRef),
//! ])?
//! .rechunk(1); // one row per chunk
//! let data = df.execute_in(&sess)?.fetch_in(&sess)?;
//! assert_eq!(data.num_rows(), 2);
//! assert_eq!(data.to_string(), "  name    v\n0    a  1.5\n1    b  NaN");
//! # Ok(())
//! # }
//! ```

use crate::error::{Error, Result};
use crate::node::{Node, Payload};
use arrow::array::{Array, ArrayRef, Int64Array};
use arrow::datatypes::{Field, Schema};
use arrow::record_batch::{RecordBatch, RecordBatchOptions};
use mars_backends::ChunkData;
use mars_ir::agg::{Agg, AggFn};
use mars_ir::colexpr::{ColExpr, Lit, StrFn};
use mars_ir::frame::batch_schema;
use mars_ir::{BinaryFn, FrameOp, Key, Meta, Op};
use std::path::Path;
use std::sync::Arc;

/// A lazy dataframe: columns of equal length, split into chunks of rows.
/// Cloning is cheap (a shared node).
#[derive(Clone)]
pub struct DataFrame {
    node: Node,
    /// How many leading columns are the index (the keys after a groupby).
    index: usize,
}

crate::node::tileable_handle!(DataFrame, DataFrameData, |d, h: &DataFrame| match d {
    ChunkData::Frame(batch) => Ok(DataFrameData { batch, index_columns: h.index }),
    other => Err(Error::Invalid(format!("expected a dataframe result, got {other:?}"))),
});

/// A fetched dataframe: a record batch whose first `index_columns` columns are
/// the index (group keys after a groupby); none means a default 0..n index.
#[derive(Clone, Debug, PartialEq)]
pub struct DataFrameData {
    batch: RecordBatch,
    index_columns: usize,
}

impl DataFrameData {
    /// The data as one Arrow record batch, index columns (if any) first.
    pub fn record_batch(&self) -> &RecordBatch {
        &self.batch
    }
    /// Number of rows.
    pub fn num_rows(&self) -> usize {
        self.batch.num_rows()
    }
    /// How many leading columns of [`record_batch`](Self::record_batch) are the
    /// index (0: a default `0..n` index).
    pub fn index_columns(&self) -> usize {
        self.index_columns
    }
}

impl std::fmt::Display for DataFrameData {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&crate::frame_display::format_frame(&self.batch, self.index_columns))
    }
}

/// A frame over a batch: the graph refers to it by a hash of its bytes; a
/// session puts it into its backend once, before the first graph reading it runs.
fn from_batch(batch: &RecordBatch, rows_per_chunk: Option<usize>) -> Result<DataFrame> {
    let schema = batch_schema(batch)?;
    // held with the frame's own schema (no metadata), as the graph says
    let batch = RecordBatch::try_new_with_options(
        schema.clone(),
        batch.columns().to_vec(),
        &RecordBatchOptions::new().with_row_count(Some(batch.num_rows())),
    )?;
    Ok(over(Payload::of(ChunkData::Frame(batch))?, rows_per_chunk))
}

fn over(payload: Arc<Payload>, rows_per_chunk: Option<usize>) -> DataFrame {
    let (schema, rows) = match &*payload.data {
        ChunkData::Frame(b) => (b.schema(), b.num_rows()),
        _ => (Arc::new(Schema::empty()), 0),
    };
    let op = Op::Frame(FrameOp::FromBatch { data: payload.key, schema, rows, rows_per_chunk });
    DataFrame { node: Node::with_payload(op, payload), index: 0 }
}

/// Read parquet: a file, or a folder of `.parquet` files with the same
/// columns (in name order). Only the footers are read here; each chunk of
/// the frame reads a run of whole row groups when it runs, and selecting
/// columns (`df.select`, `df.col`) reads only those. A missing or corrupt
/// file, or files whose columns differ, are errors naming the file.
///
/// ```
/// use mars::dataframe as md;
///
/// # fn main() -> mars::Result<()> {
/// let dir = std::env::temp_dir().join(format!("mars-doc-parquet-{}", std::process::id()));
/// std::fs::create_dir_all(&dir)?;
/// let path = dir.join("t.parquet");
/// md::DataFrame::from_rows(vec![vec![1, 2], vec![3, 4]])?.to_parquet(&path)?;
/// let df = md::read_parquet(&path)?;
/// assert_eq!(df.execute()?.fetch()?.to_string(), "   0  1\n0  1  2\n1  3  4");
/// # std::fs::remove_dir_all(&dir)?;
/// # Ok(())
/// # }
/// ```
pub fn read_parquet(path: impl AsRef<Path>) -> Result<DataFrame> {
    let (schema, files) = mars_backends::io::scan_parquet(path.as_ref()).map_err(kernel)?;
    let schema = mars_ir::frame::batch_schema(&RecordBatch::new_empty(schema))?;
    let columns = schema.fields().iter().map(|f| f.name().clone()).collect();
    let node = Node::new(Op::Frame(FrameOp::ReadParquet { files, columns, schema, filter: None }), vec![]);
    node.check()?;
    Ok(DataFrame { node, index: 0 })
}

/// How to read CSV files (pandas' `read_csv` arguments): a header line
/// (default yes), the delimiter (`,`), column types by name (the rest are
/// inferred from the first 1,000 rows: ints, floats, bools, dates such as
/// `1998-09-02`, timestamps, else strings), the values read as missing
/// (pandas' default `na_values`), and whether a file may be split into byte
/// ranges (default yes; turn it off when quoted fields hold line breaks).
#[derive(Clone, Debug)]
pub struct CsvOptions {
    format: mars_ir::CsvFormat,
    types: Vec<(String, arrow::datatypes::DataType)>,
}

impl Default for CsvOptions {
    fn default() -> Self {
        CsvOptions {
            format: mars_ir::CsvFormat {
                header: true,
                delimiter: b',',
                nulls: mars_backends::io::DEFAULT_NULLS.iter().map(|s| s.to_string()).collect(),
                split: true,
            },
            types: vec![],
        }
    }
}

impl CsvOptions {
    /// The defaults: a header, `,`, inferred types, pandas' missing values, split.
    pub fn new() -> CsvOptions {
        CsvOptions::default()
    }
    /// Whether the first line names the columns (else they are 0, 1, …).
    pub fn header(mut self, header: bool) -> Self {
        self.format.header = header;
        self
    }
    /// The byte between fields (`b'|'` for TPC-H's `.tbl` files).
    pub fn delimiter(mut self, delimiter: u8) -> Self {
        self.format.delimiter = delimiter;
        self
    }
    /// The type of column `name`, instead of the inferred one.
    pub fn dtype(mut self, name: &str, dtype: arrow::datatypes::DataType) -> Self {
        self.types.push((name.to_string(), dtype));
        self
    }
    /// The values read as missing, instead of pandas' defaults.
    pub fn nulls(mut self, nulls: &[&str]) -> Self {
        self.format.nulls = nulls.iter().map(|s| s.to_string()).collect();
        self
    }
    /// Whether a file may be read as several chunks of byte ranges.
    pub fn split(mut self, split: bool) -> Self {
        self.format.split = split;
        self
    }
}

/// Read CSV with the default [`CsvOptions`]: a file, or a folder of `.csv`
/// files with the same columns. The columns are inferred from the first
/// file now; each chunk parses its byte range when it runs. A value that
/// does not parse, or a line of the wrong width, fails the execute with an
/// error naming the file and line.
///
/// ```
/// use mars::dataframe as md;
///
/// # fn main() -> mars::Result<()> {
/// let dir = std::env::temp_dir().join(format!("mars-doc-csv-{}", std::process::id()));
/// std::fs::create_dir_all(&dir)?;
/// let path = dir.join("t.csv");
/// std::fs::write(&path, "k,v,day\nx,1.5,1998-09-02\ny,,1998-09-03\n")?;
/// let df = md::read_csv(&path)?; // as pandas' read_csv(path, parse_dates=["day"])
/// assert_eq!(df.execute()?.fetch()?.to_string(), "   k    v        day\n0  x  1.5 1998-09-02\n1  y  NaN 1998-09-03");
/// # std::fs::remove_dir_all(&dir)?;
/// # Ok(())
/// # }
/// ```
pub fn read_csv(path: impl AsRef<Path>) -> Result<DataFrame> {
    read_csv_with(path, &CsvOptions::default())
}

/// Read CSV with these options.
pub fn read_csv_with(path: impl AsRef<Path>, options: &CsvOptions) -> Result<DataFrame> {
    let (file_schema, files) =
        mars_backends::io::scan_csv(path.as_ref(), &options.format, &options.types).map_err(kernel)?;
    let columns: Vec<String> = file_schema.fields().iter().map(|f| f.name().clone()).collect();
    let op = Op::Frame(FrameOp::ReadCsv {
        files,
        format: options.format.clone(),
        schema: file_schema.clone(),
        file_schema,
        columns,
    });
    let node = Node::new(op, vec![]);
    node.check()?;
    Ok(DataFrame { node, index: 0 })
}

/// A file error as the API reports it (the message names the file).
fn kernel(e: mars_backends::error::KernelError) -> Error {
    Error::Io(e.0)
}

/// A frame that failed to build: the error is kept in its node and reported
/// by `execute` (as for tensors).
fn invalid(err: Error) -> DataFrame {
    let op = Op::Frame(FrameOp::FromBatch {
        data: Key::of(&err.to_string(), &[]),
        schema: Arc::new(Schema::empty()),
        rows: 0,
        rows_per_chunk: None,
    });
    let key = Key::of(&(err.to_string(), &op), &[]);
    DataFrame { node: Node::with_meta(key, op, vec![], Err(err)), index: 0 }
}

/// A record batch of `nrows` rows; with no columns the row count is kept
/// (Arrow cannot infer it), as in pandas' `DataFrame([[], []])`.
fn batch_of(cols: Vec<(&str, ArrayRef)>, nrows: usize) -> Result<RecordBatch> {
    let fields: Vec<Field> =
        cols.iter().map(|(name, a)| Field::new(*name, a.data_type().clone(), a.null_count() > 0)).collect();
    let arrays: Vec<ArrayRef> = cols.into_iter().map(|(_, a)| a).collect();
    let options = RecordBatchOptions::new().with_row_count(Some(nrows));
    RecordBatch::try_new_with_options(Arc::new(Schema::new(fields)), arrays, &options)
        .map_err(|e| Error::Invalid(e.to_string()))
}

impl DataFrame {
    /// `md.DataFrame([[1, 2], [3, 4]])`: integer rows, columns named "0", "1", ….
    /// Rows of different lengths are an error. As in pandas, no rows
    /// (`DataFrame([])`) give an empty frame with no columns, and empty rows
    /// (`DataFrame([[], []])`) a frame of that many rows and no columns.
    ///
    /// ```
    /// use mars::dataframe as md;
    ///
    /// # fn main() -> mars::Result<()> {
    /// let empty = md::DataFrame::from_rows(vec![])?;
    /// assert!(empty.columns().is_empty());
    /// let data = empty.execute()?.fetch()?;
    /// assert_eq!(data.to_string(), "Empty DataFrame\nColumns: []\nIndex: []");
    ///
    /// let err = md::DataFrame::from_rows(vec![vec![1, 2], vec![3]]).unwrap_err();
    /// assert!(err.to_string().contains("row 1 has 1 values but row 0 has 2"));
    /// # Ok(())
    /// # }
    /// ```
    pub fn from_rows(rows: Vec<Vec<i64>>) -> Result<DataFrame> {
        let ncols = rows.first().map_or(0, |r| r.len());
        if let Some((i, r)) = rows.iter().enumerate().find(|(_, r)| r.len() != ncols) {
            return Err(Error::Invalid(format!(
                "row {i} has {} values but row 0 has {ncols} (rows must all be the same length)",
                r.len()
            )));
        }
        let cols: Vec<(String, ArrayRef)> = (0..ncols)
            .map(|c| {
                (c.to_string(), Arc::new(Int64Array::from(rows.iter().map(|r| r[c]).collect::<Vec<_>>())) as ArrayRef)
            })
            .collect();
        let refs: Vec<(&str, ArrayRef)> = cols.iter().map(|(n, a)| (n.as_str(), a.clone())).collect();
        from_batch(&batch_of(refs, rows.len())?, None)
    }

    /// A dataframe over an Arrow record batch. Unsupported column types are
    /// reported at execute.
    pub fn from_record_batch(batch: RecordBatch) -> DataFrame {
        from_batch(&batch, None).unwrap_or_else(invalid)
    }

    /// A dataframe from named Arrow columns (Int64, Float64, Utf8, Boolean,
    /// Date32 …; other types are an error), all of the same length. No columns
    /// give an empty frame (pandas' `DataFrame({})`).
    pub fn from_columns(cols: Vec<(&str, ArrayRef)>) -> Result<DataFrame> {
        let n = cols.first().map_or(0, |(_, a)| a.len());
        if let Some((name, a)) = cols.iter().find(|(_, a)| a.len() != n) {
            return Err(Error::Invalid(format!(
                "column {name:?} has {} rows but column {:?} has {n}",
                a.len(),
                cols[0].0
            )));
        }
        from_batch(&batch_of(cols, n)?, None)
    }

    /// Column names, in order (empty for an invalid frame).
    pub fn columns(&self) -> Vec<String> {
        match self.node.meta() {
            Meta::Frame { schema, .. } => schema.fields().iter().map(|f| f.name().clone()).collect(),
            Meta::Tensor { .. } => vec![],
        }
    }

    /// These columns, in this order (`df[["a", "b"]]`). An unknown name is an
    /// error listing the columns there are.
    ///
    /// ```
    /// use mars::dataframe as md;
    ///
    /// # fn main() -> mars::Result<()> {
    /// let df = md::DataFrame::from_rows(vec![vec![1, 2, 3], vec![4, 5, 6]])?;
    /// let data = df.select(&["2", "0"])?.execute()?.fetch()?;
    /// assert_eq!(data.to_string(), "   2  0\n0  3  1\n1  6  4");
    /// let err = df.select(&["x"]).unwrap_err();
    /// assert!(err.to_string().contains(r#"column "x" is not in the frame; its columns are ["0", "1", "2"]"#));
    /// # Ok(())
    /// # }
    /// ```
    pub fn select(&self, names: &[&str]) -> Result<DataFrame> {
        Ok(DataFrame { node: self.selected(names)?, index: 0 })
    }

    /// One column as a Series (`df["a"]`); an unknown name is an error
    /// listing the columns there are.
    pub fn col(&self, name: &str) -> Result<Series> {
        Ok(Series { node: self.selected(&[name])? })
    }

    fn selected(&self, names: &[&str]) -> Result<Node> {
        self.node.check()?;
        let columns: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        if let Op::Frame(FrameOp::ReadParquet { files, schema, filter, .. }) = self.node.op() {
            // column pruning: read only these columns from the files
            let indices = mars_ir::frame::column_indices(schema, &columns)?;
            let schema = Arc::new(schema.project(&indices)?);
            let op = Op::Frame(FrameOp::ReadParquet { files: files.clone(), columns, schema, filter: filter.clone() });
            let node = Node::new(op, vec![]);
            node.check()?;
            return Ok(node);
        }
        if let Op::Frame(FrameOp::ReadCsv { files, format, file_schema, schema, .. }) = self.node.op() {
            let indices = mars_ir::frame::column_indices(schema, &columns)?;
            let op = Op::Frame(FrameOp::ReadCsv {
                files: files.clone(),
                format: format.clone(),
                file_schema: file_schema.clone(),
                schema: Arc::new(schema.project(&indices)?),
                columns,
            });
            let node = Node::new(op, vec![]);
            node.check()?;
            return Ok(node);
        }
        let node = Node::new(Op::Frame(FrameOp::Select { columns }), vec![self.node.clone()]);
        node.check()?;
        Ok(node)
    }

    /// The rows where `mask` (a bool Series of this frame) is true (`df[mask]`).
    /// The lengths of the result's chunks are known once it ran.
    ///
    /// ```
    /// use mars::dataframe as md;
    ///
    /// # fn main() -> mars::Result<()> {
    /// let df = md::DataFrame::from_rows(vec![vec![1, 10], vec![5, 20], vec![3, 30]])?;
    /// let kept = df.filter(&df.col("0")?.gt(2))?;
    /// assert_eq!(kept.execute()?.fetch()?.to_string(), "   0   1\n0  5  20\n1  3  30");
    /// # Ok(())
    /// # }
    /// ```
    pub fn filter(&self, mask: &Series) -> Result<DataFrame> {
        let node = Node::new(Op::Frame(FrameOp::Filter), vec![self.node.clone(), mask.node.clone()]);
        node.check()?;
        Ok(DataFrame { node, index: self.index })
    }

    /// This frame with `s` (a Series of it, or lined up with it) as column
    /// `name`: replacing the column of that name in place, else added last
    /// (`df[name] = s`).
    pub fn with_column(&self, name: &str, s: &Series) -> Result<DataFrame> {
        let op = Op::Frame(FrameOp::WithColumn { name: name.to_string() });
        let node = Node::new(op, vec![self.node.clone(), s.node.clone()]);
        node.check()?;
        Ok(DataFrame { node, index: self.index })
    }

    /// The index columns (a groupby's keys) as ordinary columns
    /// (`reset_index()`); the data is unchanged.
    pub fn reset_index(&self) -> DataFrame {
        DataFrame { node: self.node.clone(), index: 0 }
    }

    /// The first `n` rows (`df.head(n)`): only the chunks holding them run.
    /// After `sort_values`, each chunk's top `n` rows are found and only
    /// those are sorted together (the whole frame is never sorted).
    pub fn head(&self, n: usize) -> DataFrame {
        if self.node.check().is_err() {
            return self.clone();
        }
        if let (Op::Frame(FrameOp::Sort { by }), [input]) = (self.node.op(), self.node.inputs()) {
            let op = Op::Frame(FrameOp::SortHead { by: by.clone(), n });
            return DataFrame { node: Node::new(op, vec![input.clone()]), index: self.index };
        }
        DataFrame { node: Node::new(Op::Frame(FrameOp::Head { n }), vec![self.node.clone()]), index: self.index }
    }

    /// Group the rows by the values of the `keys` columns (`df.groupby(keys)`),
    /// then aggregate with [`GroupBy::agg`], [`GroupBy::sum`] and the like.
    /// As in pandas, rows with a missing key are dropped and the result has
    /// the keys as its leading (index) columns, sorted.
    ///
    /// ```
    /// use mars::dataframe as md;
    ///
    /// # fn main() -> mars::Result<()> {
    /// let df = md::DataFrame::from_rows(vec![vec![1, 10], vec![2, 20], vec![1, 30]])?.rechunk(2);
    /// let g = df.groupby(&["0"])?.agg(&[("1", "sum"), ("1", "mean"), ("1", "count")])?;
    /// assert_eq!(g.columns(), ["0", "1_sum", "1_mean", "1_count"]);
    /// let data = g.execute()?.fetch()?;
    /// assert_eq!(data.to_string(), "   1_sum  1_mean  1_count\n0                        \n1     40    20.0        2\n2     20    20.0        1");
    /// # Ok(())
    /// # }
    /// ```
    pub fn groupby(&self, keys: &[&str]) -> Result<GroupBy> {
        self.node.check()?;
        if keys.is_empty() {
            return Err(Error::Invalid("groupby needs at least one key column (no group keys passed)".into()));
        }
        let keys: Vec<String> = keys.iter().map(|k| k.to_string()).collect();
        if let Meta::Frame { schema, .. } = self.node.meta() {
            mars_ir::frame::column_indices(&schema, &keys)?;
        }
        Ok(GroupBy { frame: self.clone(), keys, method: GroupMethod::Auto })
    }

    /// `pd.merge(self, right, on=on, how=how)`: rows whose `on` columns are
    /// equal on both sides, the key columns once, other columns of the same
    /// name suffixed `_x` (left) and `_y` (right). A small side (one chunk's
    /// budget) is broadcast to every chunk of the other; else both are hash
    /// partitioned on the keys. Keys must have the same type (two integer or
    /// two string types also meet for a single key); missing keys match
    /// nothing. Rows come in chunk order, not sorted.
    ///
    /// ```
    /// use mars::dataframe as md;
    ///
    /// # fn main() -> mars::Result<()> {
    /// let orders = md::DataFrame::from_rows(vec![vec![1, 100], vec![2, 200], vec![1, 300]])?;
    /// let people = md::DataFrame::from_rows(vec![vec![1, 7], vec![3, 9]])?;
    /// let m = orders.merge(&people, &["0"], md::How::Inner)?;
    /// assert_eq!(m.columns(), ["0", "1_x", "1_y"]);
    /// assert_eq!(m.execute()?.fetch()?.to_string(), "   0  1_x  1_y\n0  1  100    7\n1  1  300    7");
    /// # Ok(())
    /// # }
    /// ```
    pub fn merge(&self, right: &DataFrame, on: &[&str], how: How) -> Result<DataFrame> {
        self.merge_on(right, on, on, how)
    }

    /// `pd.merge(self, right, left_on=…, right_on=…, how=how)`: as
    /// [`merge`](Self::merge) with keys named differently on each side (both
    /// key columns are kept).
    pub fn merge_on(&self, right: &DataFrame, left_on: &[&str], right_on: &[&str], how: How) -> Result<DataFrame> {
        self.node.check()?;
        right.node.check()?;
        let op = Op::Frame(FrameOp::Merge {
            how,
            left_on: left_on.iter().map(|s| s.to_string()).collect(),
            right_on: right_on.iter().map(|s| s.to_string()).collect(),
        });
        let node = Node::new(op, vec![self.node.clone(), right.node.clone()]);
        node.check()?;
        Ok(DataFrame { node, index: 0 })
    }

    /// Each distinct row once, first occurrences in their order (pandas'
    /// `drop_duplicates()`; missing values equal each other). Each chunk's
    /// distinct rows are found, then merged in a tree into one chunk.
    ///
    /// ```
    /// use mars::dataframe as md;
    ///
    /// # fn main() -> mars::Result<()> {
    /// let df = md::DataFrame::from_rows(vec![vec![1, 2], vec![3, 4], vec![1, 2], vec![5, 6], vec![3, 4]])?.rechunk(2);
    /// let d = df.drop_duplicates().execute()?.fetch()?;
    /// assert_eq!(d.to_string(), "   0  1\n0  1  2\n1  3  4\n2  5  6");
    /// # Ok(())
    /// # }
    /// ```
    pub fn drop_duplicates(&self) -> DataFrame {
        if self.node.check().is_err() {
            return self.clone();
        }
        DataFrame { node: Node::new(Op::Frame(FrameOp::DropDuplicates), vec![self.node.clone()]), index: self.index }
    }

    /// The rows sorted by the columns `by`, all ascending or all descending
    /// (`sort_values(by, ascending=…)`); see [`sort_values_by`](Self::sort_values_by).
    pub fn sort_values(&self, by: &[&str], ascending: bool) -> Result<DataFrame> {
        let by: Vec<(&str, bool)> = by.iter().map(|c| (*c, ascending)).collect();
        self.sort_values_by(&by)
    }

    /// The rows sorted by these columns, each ascending or not, stably (rows
    /// with equal keys keep their order); missing values and NaN last, as
    /// pandas. Several chunks sort in parallel by regular sampling: the
    /// result's chunks are consecutive key ranges. (Rows get a new `0..n`
    /// index; pandas would keep the old labels.)
    ///
    /// ```
    /// use mars::dataframe as md;
    ///
    /// # fn main() -> mars::Result<()> {
    /// let df = md::DataFrame::from_rows(vec![vec![2, 1], vec![1, 2], vec![2, 0], vec![1, 3]])?.rechunk(2);
    /// let s = df.sort_values_by(&[("0", true), ("1", false)])?;
    /// assert_eq!(s.execute()?.fetch()?.to_string(), "   0  1\n0  1  3\n1  1  2\n2  2  1\n3  2  0");
    /// # Ok(())
    /// # }
    /// ```
    pub fn sort_values_by(&self, by: &[(&str, bool)]) -> Result<DataFrame> {
        self.node.check()?;
        let by = by.iter().map(|(c, asc)| (c.to_string(), *asc)).collect();
        let node = Node::new(Op::Frame(FrameOp::Sort { by }), vec![self.node.clone()]);
        node.check()?;
        Ok(DataFrame { node, index: self.index })
    }

    /// `describe()`: count, mean, std, min, the quartiles (exact, pandas'
    /// linear interpolation) and max of each numeric column (not bools, not
    /// the index), as a frame with those names as its index. Missing values
    /// and NaN are skipped. A frame with no numeric column is an error.
    ///
    /// ```
    /// use mars::dataframe as md;
    ///
    /// # fn main() -> mars::Result<()> {
    /// let df = md::DataFrame::from_rows(vec![vec![1, 10], vec![2, 20], vec![3, 30], vec![4, 40]])?.rechunk(3);
    /// let d = df.describe()?.execute()?.fetch()?;
    /// assert_eq!(
    ///     d.to_string(),
    ///     "              0          1
    /// count  4.000000   4.000000
    /// mean   2.500000  25.000000
    /// std    1.290994  12.909944
    /// min    1.000000  10.000000
    /// 25%    1.750000  17.500000
    /// 50%    2.500000  25.000000
    /// 75%    3.250000  32.500000
    /// max    4.000000  40.000000"
    /// );
    /// # Ok(())
    /// # }
    /// ```
    pub fn describe(&self) -> Result<DataFrame> {
        self.node.check()?;
        let Meta::Frame { schema, .. } = self.node.meta() else {
            return Err(Error::Invalid("describe needs a dataframe".into()));
        };
        let numeric: Vec<String> = schema
            .fields()
            .iter()
            .skip(self.index)
            .filter(|f| {
                mars_ir::agg::is_numeric(f.data_type()) && f.data_type() != &arrow::datatypes::DataType::Boolean
            })
            .map(|f| f.name().clone())
            .collect();
        if numeric.is_empty() {
            let cols: Vec<String> = schema
                .fields()
                .iter()
                .map(|f| format!("{}: {}", f.name(), mars_ir::frame::type_name(f.data_type())))
                .collect();
            return Err(Error::Invalid(format!(
                "describe needs a numeric column; the frame has [{}]",
                cols.join(", ")
            )));
        }
        let mut aggs = Vec::with_capacity(5 * numeric.len());
        for (i, c) in numeric.iter().enumerate() {
            for func in [AggFn::Count, AggFn::Mean, AggFn::Std, AggFn::Min, AggFn::Max] {
                aggs.push(Agg { column: c.clone(), func, name: format!("{i}_{}", func.name()) });
            }
        }
        let partial =
            Node::new(Op::Frame(FrameOp::GroupPartial { keys: vec![], aggs: aggs.clone() }), vec![self.node.clone()]);
        let stats =
            Node::new(Op::Frame(FrameOp::GroupAgg { nkeys: 0, aggs, method: GroupMethod::Tree }), vec![partial]);
        let mut inputs = vec![stats];
        for c in &numeric {
            inputs.push(self.col(c)?.quantiles(&[0.25, 0.5, 0.75]));
        }
        let node = Node::new(Op::Frame(FrameOp::Describe { columns: numeric }), inputs);
        node.check()?;
        Ok(DataFrame { node, index: 1 })
    }

    /// Write the frame to one parquet file at `path` (snappy-compressed, a row
    /// group per chunk), executing it in the default session first. Chunks
    /// are written one at a time, so the frame never sits whole in memory.
    /// Index columns (the keys after a groupby) are written as columns.
    pub fn to_parquet(&self, path: impl AsRef<Path>) -> Result<()> {
        self.to_parquet_in(&crate::Session::default_or_local()?, path)
    }

    /// [`to_parquet`](Self::to_parquet) in `session`.
    pub fn to_parquet_in(&self, session: &crate::Session, path: impl AsRef<Path>) -> Result<()> {
        let mut sink: Option<mars_backends::io::ParquetSink> = None;
        self.each_batch(session, |batch| {
            if sink.is_none() {
                sink = Some(mars_backends::io::ParquetSink::create(path.as_ref(), batch.schema()).map_err(kernel)?);
            }
            sink.as_mut().map_or(Ok(()), |s| s.write(&batch).map_err(kernel))
        })?;
        sink.ok_or_else(|| Error::Invalid("to_parquet of a frame with no chunks".into()))?.finish().map_err(kernel)
    }

    /// Write the frame to one CSV file at `path` (a header line, no index;
    /// missing values empty), executing it in the default session first,
    /// one chunk at a time.
    pub fn to_csv(&self, path: impl AsRef<Path>) -> Result<()> {
        self.to_csv_in(&crate::Session::default_or_local()?, path)
    }

    /// [`to_csv`](Self::to_csv) in `session`.
    pub fn to_csv_in(&self, session: &crate::Session, path: impl AsRef<Path>) -> Result<()> {
        let mut sink = mars_backends::io::CsvSink::create(path.as_ref()).map_err(kernel)?;
        self.each_batch(session, |batch| sink.write(&batch).map_err(kernel))?;
        sink.finish().map_err(kernel)
    }

    /// Execute in `session`, then `f` of each chunk's batch in order.
    fn each_batch(&self, session: &crate::Session, mut f: impl FnMut(RecordBatch) -> Result<()>) -> Result<()> {
        self.execute_in(session)?;
        session.for_each_chunk(&self.node, |chunk| match chunk {
            ChunkData::Frame(batch) => f(batch),
            _ => Err(Error::Invalid("writing a result that is not a dataframe".into())),
        })
    }

    /// The construction error of this frame (reported by `execute`), if any.
    pub fn error(&self) -> Option<Error> {
        self.node.check().err()
    }

    /// Rows per chunk (on a source, changes how it is split). `0` is an error,
    /// reported by `execute`.
    pub fn rechunk(&self, rows_per_chunk: usize) -> DataFrame {
        if self.node.check().is_err() {
            return self.clone();
        }
        if rows_per_chunk == 0 {
            return invalid(Error::Invalid("rechunk: rows_per_chunk must be positive, got 0".into()));
        }
        match (self.node.op(), self.node.payload()) {
            (Op::Frame(FrameOp::FromBatch { .. }), Some(p)) => over(p.clone(), Some(rows_per_chunk)),
            _ => self.clone(),
        }
    }
}

pub use mars_ir::join::How;
pub use mars_ir::GroupMethod;

/// A grouping of a dataframe's rows by key columns, from
/// [`DataFrame::groupby`]; aggregating it gives a dataframe.
#[derive(Clone, Debug)]
pub struct GroupBy {
    frame: DataFrame,
    keys: Vec<String>,
    method: GroupMethod,
}

impl GroupBy {
    /// How the chunks' partial aggregates meet (Mars's `method`): `Auto`
    /// (the default) picks a tree when the partials are small and a hash
    /// shuffle when they are not, from their sizes once run.
    pub fn method(mut self, method: GroupMethod) -> GroupBy {
        self.method = method;
        self
    }

    /// `agg({column: func})` as (column, func) pairs: one result column per
    /// pair, named `{column}_{func}` (`v_sum`), after the keys. Funcs: sum
    /// mean min max count size std var first nunique. An unknown column or
    /// func, or one that does not apply to the column's type, is an error.
    pub fn agg(&self, aggs: &[(&str, &str)]) -> Result<DataFrame> {
        let aggs = aggs
            .iter()
            .map(|(c, f)| {
                let func = AggFn::parse(f)?;
                Ok(Agg { column: c.to_string(), func, name: format!("{c}_{}", func.name()) })
            })
            .collect::<Result<Vec<_>>>()?;
        self.aggregate(aggs)
    }

    /// pandas' named aggregation, `agg(out=(column, func), …)`, as
    /// (out, column, func) triples: one result column per triple, named
    /// `out`, after the keys. Funcs and errors as [`agg`](Self::agg); two
    /// outputs of the same name are an error.
    ///
    /// ```
    /// use mars::dataframe as md;
    ///
    /// # fn main() -> mars::Result<()> {
    /// let df = md::DataFrame::from_rows(vec![vec![1, 10], vec![2, 20], vec![1, 30]])?.rechunk(2);
    /// let g = df.groupby(&["0"])?.agg_named(&[("total", "1", "sum"), ("rows", "1", "size")])?;
    /// assert_eq!(g.columns(), ["0", "total", "rows"]);
    /// let err = df.groupby(&["0"])?.agg_named(&[("t", "1", "sum"), ("t", "1", "max")]).unwrap_err();
    /// assert!(err.to_string().contains(r#"output column "t" is named twice"#));
    /// # Ok(())
    /// # }
    /// ```
    pub fn agg_named(&self, aggs: &[(&str, &str, &str)]) -> Result<DataFrame> {
        let mut seen = std::collections::HashSet::new();
        let aggs = aggs
            .iter()
            .map(|(out, c, f)| {
                if !seen.insert(*out) || self.keys.iter().any(|k| k == out) {
                    return Err(Error::Invalid(format!(
                        "groupby output column {out:?} is named twice (keys {:?})",
                        self.keys
                    )));
                }
                Ok(Agg { column: c.to_string(), func: AggFn::parse(f)?, name: out.to_string() })
            })
            .collect::<Result<Vec<_>>>()?;
        self.aggregate(aggs)
    }

    fn aggregate(&self, aggs: Vec<Agg>) -> Result<DataFrame> {
        let partial = Node::new(
            Op::Frame(FrameOp::GroupPartial { keys: self.keys.clone(), aggs: aggs.clone() }),
            vec![self.frame.node.clone()],
        );
        partial.check()?;
        let op = Op::Frame(FrameOp::GroupAgg { nkeys: self.keys.len(), aggs, method: self.method });
        let node = Node::new(op, vec![partial]);
        node.check()?;
        Ok(DataFrame { node, index: self.keys.len() })
    }

    /// `func` of every column but the keys, each keeping its name.
    fn each(&self, func: AggFn) -> Result<DataFrame> {
        let aggs = self
            .frame
            .columns()
            .into_iter()
            .filter(|c| !self.keys.contains(c))
            .map(|c| Agg { column: c.clone(), func, name: c })
            .collect();
        self.aggregate(aggs)
    }

    /// The sum of every other column per group.
    pub fn sum(&self) -> Result<DataFrame> {
        self.each(AggFn::Sum)
    }
    /// The mean of every other column per group.
    pub fn mean(&self) -> Result<DataFrame> {
        self.each(AggFn::Mean)
    }
    /// The non-missing values of every other column per group.
    pub fn count(&self) -> Result<DataFrame> {
        self.each(AggFn::Count)
    }
    /// The smallest value of every other column per group.
    pub fn min(&self) -> Result<DataFrame> {
        self.each(AggFn::Min)
    }
    /// The largest value of every other column per group.
    pub fn max(&self) -> Result<DataFrame> {
        self.each(AggFn::Max)
    }
    /// The sample standard deviation (ddof 1) of every other column per group.
    pub fn std(&self) -> Result<DataFrame> {
        self.each(AggFn::Std)
    }
    /// The sample variance (ddof 1) of every other column per group.
    pub fn var(&self) -> Result<DataFrame> {
        self.each(AggFn::Var)
    }
    /// The first non-missing value of every other column per group.
    pub fn first(&self) -> Result<DataFrame> {
        self.each(AggFn::First)
    }
    /// The number of distinct values of every other column per group.
    pub fn nunique(&self) -> Result<DataFrame> {
        self.each(AggFn::Nunique)
    }
    /// The rows of each group, as one column named `size`.
    pub fn size(&self) -> Result<DataFrame> {
        let column = self.keys[0].clone();
        self.aggregate(vec![Agg { column, func: AggFn::Size, name: "size".into() }])
    }
}

/// A lazy Series: one named column of a dataframe, in row chunks. Cloning is
/// cheap (a shared node).
#[derive(Clone)]
pub struct Series {
    node: Node,
}

crate::node::tileable_handle!(Series, SeriesData, |d, _| match d {
    ChunkData::Frame(batch) if batch.num_columns() == 1 => {
        Ok(SeriesData { name: batch.schema().field(0).name().clone(), array: batch.column(0).clone() })
    }
    other => Err(Error::Invalid(format!("expected a one-column result for a Series, got {other:?}"))),
});

/// The right-hand side of a Series operator: a number, a string, a bool or
/// another Series (of the same frame, so their rows line up).
#[derive(Clone, Debug)]
pub enum Operand {
    /// A literal value.
    Lit(Lit),
    /// Another Series.
    Series(Series),
}

impl From<f64> for Operand {
    fn from(v: f64) -> Self {
        Operand::Lit(Lit::F64(v))
    }
}
impl From<i64> for Operand {
    fn from(v: i64) -> Self {
        Operand::Lit(Lit::I64(v))
    }
}
impl From<i32> for Operand {
    fn from(v: i32) -> Self {
        Operand::Lit(Lit::I64(v.into()))
    }
}
impl From<bool> for Operand {
    fn from(v: bool) -> Self {
        Operand::Lit(Lit::Bool(v))
    }
}
impl From<&str> for Operand {
    fn from(v: &str) -> Self {
        Operand::Lit(Lit::Str(v.to_string()))
    }
}
/// A calendar date (a Date32 value: days since 1970-01-01), for comparing
/// with date columns: `d.le(md::Date::parse("1998-09-02")?)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Date(i32);

impl Date {
    /// `"YYYY-MM-DD"`; anything else (or a day that does not exist) is an error.
    pub fn parse(s: &str) -> Result<Date> {
        let bad = || Error::Invalid(format!("{s:?} is not a date of the form YYYY-MM-DD"));
        let parts: Vec<&str> = s.split('-').collect();
        let [y, m, d] = parts.as_slice() else { return Err(bad()) };
        if y.len() != 4 || m.len() != 2 || d.len() != 2 {
            return Err(bad());
        }
        let num = |p: &str| p.parse::<u32>().map_err(|_| bad());
        Date::from_ymd(num(y)? as i32, num(m)?, num(d)?).map_err(|_| bad())
    }
    /// The date of this year, month (1–12) and day (1–31); an error when it does not exist.
    pub fn from_ymd(year: i32, month: u32, day: u32) -> Result<Date> {
        let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
        let days_in = [31, if leap { 29 } else { 28 }, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
        if !(1..=12).contains(&month) || day == 0 || day > days_in[month as usize - 1] {
            return Err(Error::Invalid(format!("{year}-{month:02}-{day:02} is not a date")));
        }
        // days from the civil date (Howard Hinnant's algorithm)
        let y = i64::from(year) - i64::from(month <= 2);
        let era = y.div_euclid(400);
        let yoe = y - era * 400;
        let mp = (i64::from(month) + 9) % 12;
        let doy = (153 * mp + 2) / 5 + i64::from(day) - 1;
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
        let days = era * 146_097 + doe - 719_468;
        i32::try_from(days).map(Date).map_err(|_| Error::Invalid(format!("year {year} is out of range")))
    }
    /// Days since 1970-01-01.
    pub fn days(self) -> i32 {
        self.0
    }
}

impl From<Date> for Operand {
    fn from(d: Date) -> Self {
        Operand::Lit(Lit::Date(d.0))
    }
}

impl From<&Series> for Operand {
    fn from(s: &Series) -> Self {
        Operand::Series(s.clone())
    }
}

macro_rules! comparisons {
    ($($name:ident => $f:ident, $doc:literal;)*) => {
        impl Series {
            $(
                #[doc = $doc]
                pub fn $name(&self, rhs: impl Into<Operand>) -> Series {
                    self.binary(BinaryFn::$f, rhs.into(), false)
                }
            )*
        }
    };
}

comparisons! {
    gt => Gt, "Element-wise `>` (a bool Series; a missing value compares false, as in pandas).";
    lt => Lt, "Element-wise `<`.";
    ge => Ge, "Element-wise `>=`.";
    le => Le, "Element-wise `<=`.";
    eq => Eq, "Element-wise `==`.";
    ne => Ne, "Element-wise `!=`.";
}

macro_rules! series_operators {
    ($($tr:ident $method:ident => $f:ident;)*) => {$(
        impl<R: Into<Operand>> std::ops::$tr<R> for &Series {
            type Output = Series;
            fn $method(self, rhs: R) -> Series {
                self.binary(BinaryFn::$f, rhs.into(), false)
            }
        }
        impl<R: Into<Operand>> std::ops::$tr<R> for Series {
            type Output = Series;
            fn $method(self, rhs: R) -> Series {
                self.binary(BinaryFn::$f, rhs.into(), false)
            }
        }
        impl std::ops::$tr<&Series> for f64 {
            type Output = Series;
            fn $method(self, rhs: &Series) -> Series {
                rhs.binary(BinaryFn::$f, Operand::Lit(Lit::F64(self)), true)
            }
        }
    )*};
}

series_operators! {
    Add add => Add;
    Sub sub => Sub;
    Mul mul => Mul;
    Div div => Div;
    BitAnd bitand => And;
    BitOr bitor => Or;
}

impl std::ops::Not for &Series {
    type Output = Series;
    fn not(self) -> Series {
        let expr = ColExpr::Not(Box::new(ColExpr::Input(0)));
        let op = Op::Frame(FrameOp::Eval { expr, name: self.name() });
        Series { node: Node::new(op, vec![self.node.clone()]) }
    }
}

impl Series {
    /// `self f rhs` (or `rhs f self` when `reversed`) as a new Series, named
    /// like pandas: after `self`, unless two Series of different names meet.
    fn binary(&self, f: BinaryFn, rhs: Operand, reversed: bool) -> Series {
        let (a, b, inputs, name) = match rhs {
            Operand::Lit(l) => (ColExpr::Input(0), ColExpr::Lit(l), vec![self.node.clone()], self.name()),
            Operand::Series(s) => {
                let name = if s.name() == self.name() { self.name() } else { String::new() };
                (ColExpr::Input(0), ColExpr::Input(1), vec![self.node.clone(), s.node.clone()], name)
            }
        };
        let (a, b) = if reversed { (b, a) } else { (a, b) };
        let op = Op::Frame(FrameOp::Eval { expr: ColExpr::Binary(f, Box::new(a), Box::new(b)), name });
        Series { node: Node::new(op, inputs) }
    }

    /// A whole-column aggregation as a one-value tileable: the groupby
    /// machinery with no keys (per-chunk partials, merged in a tree).
    fn reduce(&self, func: AggFn) -> Scalar {
        let column = self.name();
        let aggs = vec![Agg { column: column.clone(), func, name: column }];
        let partial =
            Node::new(Op::Frame(FrameOp::GroupPartial { keys: vec![], aggs: aggs.clone() }), vec![self.node.clone()]);
        let op = Op::Frame(FrameOp::GroupAgg { nkeys: 0, aggs, method: GroupMethod::Tree });
        Scalar { node: Node::new(op, vec![partial]) }
    }

    /// This Series as a one-column frame.
    fn frame(&self) -> DataFrame {
        DataFrame { node: self.node.clone(), index: 0 }
    }

    /// How often each value occurs (missing ones not counted): a frame with
    /// the values as its index column and a `count` column, most frequent
    /// first (ties by value), as pandas' `value_counts()`.
    ///
    /// ```
    /// use mars::dataframe as md;
    ///
    /// # fn main() -> mars::Result<()> {
    /// let df = md::DataFrame::from_rows(vec![vec![3], vec![1], vec![3], vec![2], vec![1], vec![3]])?.rechunk(4);
    /// let counts = df.col("0")?.value_counts()?.execute()?.fetch()?;
    /// assert_eq!(counts.to_string(), "   count\n0       \n3      3\n1      2\n2      1");
    /// # Ok(())
    /// # }
    /// ```
    pub fn value_counts(&self) -> Result<DataFrame> {
        let name = self.name();
        let counts = self.frame().groupby(&[name.as_str()])?.aggregate(vec![Agg {
            column: name.clone(),
            func: AggFn::Size,
            name: "count".into(),
        }])?;
        counts.sort_values_by(&[("count", false), (name.as_str(), true)])
    }

    /// Quantile `q` (0 to 1) of the values, missing ones and NaN skipped,
    /// interpolated linearly as pandas' `quantile(q)` (NaN with no values).
    /// Exact: the values are sorted (chunk-wise, by sampled ranges) and only
    /// the rows at the needed ranks are read.
    ///
    /// ```
    /// use mars::dataframe as md;
    ///
    /// # fn main() -> mars::Result<()> {
    /// let df = md::DataFrame::from_rows(vec![vec![4], vec![1], vec![3], vec![2]])?.rechunk(3);
    /// let median = df.col("0")?.quantile(0.5).execute()?.fetch()?;
    /// assert_eq!(median.as_f64(), Some(2.5));
    /// # Ok(())
    /// # }
    /// ```
    pub fn quantile(&self, q: f64) -> Scalar {
        Scalar { node: self.quantiles(&[q]) }
    }

    /// The quantiles `qs` as a one-column frame: the present values sorted,
    /// then interpolated.
    fn quantiles(&self, qs: &[f64]) -> Node {
        let name = self.name();
        // x == x is false for missing values and NaN: what pandas skips
        let present = self.eq(self);
        let sorted = self.frame().filter(&present).and_then(|f| f.sort_values(&[name.as_str()], true));
        match sorted {
            Ok(sorted) => Node::new(Op::Frame(FrameOp::Quantiles { qs: qs.to_vec() }), vec![sorted.node]),
            Err(_) => Node::new(Op::Frame(FrameOp::Quantiles { qs: qs.to_vec() }), vec![self.node.clone()]),
        }
    }

    /// The distinct values (missing ones dropped), sorted (pandas gives them
    /// in order of appearance).
    pub fn unique(&self) -> Result<Series> {
        let name = self.name();
        let keys = self.frame().groupby(&[name.as_str()])?.aggregate(vec![])?;
        Ok(Series { node: keys.node })
    }

    /// The sum of the values (missing ones skipped; 0 when there are none).
    /// Integers and bools sum to an int64, other numbers to a float64.
    ///
    /// ```
    /// use mars::dataframe as md;
    ///
    /// # fn main() -> mars::Result<()> {
    /// let df = md::DataFrame::from_rows(vec![vec![1, 10], vec![2, 20], vec![4, 30]])?.rechunk(2);
    /// let total = df.col("1")?.sum();
    /// assert_eq!(total.execute()?.fetch()?.as_i64(), Some(60));
    /// let mean = (&df.col("0")? * 0.5).mean().execute()?.fetch()?;
    /// assert_eq!(mean.to_string(), "1.1666666666666667");
    /// # Ok(())
    /// # }
    /// ```
    pub fn sum(&self) -> Scalar {
        self.reduce(AggFn::Sum)
    }
    /// The mean of the values (missing ones skipped; missing when there are none).
    pub fn mean(&self) -> Scalar {
        self.reduce(AggFn::Mean)
    }
    /// The smallest value (numbers, dates, strings).
    pub fn min(&self) -> Scalar {
        self.reduce(AggFn::Min)
    }
    /// The largest value.
    pub fn max(&self) -> Scalar {
        self.reduce(AggFn::Max)
    }
    /// How many values are not missing.
    pub fn count(&self) -> Scalar {
        self.reduce(AggFn::Count)
    }
    /// The sample standard deviation (ddof 1, as pandas).
    pub fn std(&self) -> Scalar {
        self.reduce(AggFn::Std)
    }
    /// The sample variance (ddof 1).
    pub fn var(&self) -> Scalar {
        self.reduce(AggFn::Var)
    }
    /// How many distinct values are not missing.
    pub fn nunique(&self) -> Scalar {
        self.reduce(AggFn::Nunique)
    }

    /// A Series of this one's values through `expr` (`Input(0)` is this one,
    /// `Input(1)` the other Series, if any), named after this one.
    fn unary(&self, expr: ColExpr, other: Option<&Series>) -> Series {
        let mut inputs = vec![self.node.clone()];
        inputs.extend(other.map(|s| s.node.clone()));
        Series { node: Node::new(Op::Frame(FrameOp::Eval { expr, name: self.name() }), inputs) }
    }

    /// `lo <= s <= hi` (pandas' inclusive `between`).
    pub fn between(&self, lo: impl Into<Operand>, hi: impl Into<Operand>) -> Series {
        &self.ge(lo) & &self.le(hi)
    }

    /// Whether each value is one of `values` (numbers, strings or dates);
    /// a missing value is not.
    ///
    /// ```
    /// use mars::dataframe as md;
    ///
    /// # fn main() -> mars::Result<()> {
    /// let df = md::DataFrame::from_rows(vec![vec![1], vec![2], vec![3]])?;
    /// let s = df.col("0")?.isin(&[1i64.into(), 3i64.into()]);
    /// let got = s.execute()?.fetch()?;
    /// assert_eq!(got.array().as_ref(), &mars::arrow::array::BooleanArray::from(vec![true, false, true]));
    /// # Ok(())
    /// # }
    /// ```
    pub fn isin(&self, values: &[Operand]) -> Series {
        let lits = values
            .iter()
            .map(|v| match v {
                Operand::Lit(l) => Ok(l.clone()),
                Operand::Series(_) => Err(()),
            })
            .collect::<std::result::Result<Vec<_>, ()>>();
        match lits {
            Ok(lits) => self.unary(ColExpr::IsIn(Box::new(ColExpr::Input(0)), lits), None),
            Err(()) => Series { node: invalid(Error::Invalid("isin takes values, not Series".into())).node },
        }
    }

    /// Whether each string starts with `prefix` (`s.str.startswith`); missing is false.
    pub fn str_starts_with(&self, prefix: &str) -> Series {
        self.unary(ColExpr::Str(StrFn::StartsWith, Box::new(ColExpr::Input(0)), prefix.to_string()), None)
    }

    /// Whether each string contains `part` (a plain substring, as
    /// `s.str.contains(part, regex=False)`); missing is false.
    pub fn str_contains(&self, part: &str) -> Series {
        self.unary(ColExpr::Str(StrFn::Contains, Box::new(ColExpr::Input(0)), part.to_string()), None)
    }

    /// The values as `dtype` (`astype`); a value that does not fit fails the execute.
    pub fn astype(&self, dtype: arrow::datatypes::DataType) -> Series {
        self.unary(ColExpr::Cast(Box::new(ColExpr::Input(0)), dtype), None)
    }

    /// Missing values (and NaN) replaced by `value` (`fillna`).
    pub fn fillna(&self, value: impl Into<Operand>) -> Series {
        match value.into() {
            Operand::Lit(l) => self.unary(ColExpr::FillNull(Box::new(ColExpr::Input(0)), l), None),
            Operand::Series(_) => {
                Series { node: invalid(Error::Invalid("fillna takes a value, not a Series".into())).node }
            }
        }
    }

    /// The column's name.
    pub fn name(&self) -> String {
        match self.node.meta() {
            Meta::Frame { schema, .. } => schema.fields().first().map(|f| f.name().clone()).unwrap_or_default(),
            Meta::Tensor { .. } => String::new(),
        }
    }
}

/// A lazy single value: a Series reduction (`s.sum()`). Cloning is cheap.
#[derive(Clone)]
pub struct Scalar {
    node: Node,
}

crate::node::tileable_handle!(Scalar, ScalarValue, |d, _| match d {
    ChunkData::Frame(batch) if batch.num_columns() == 1 && batch.num_rows() == 1 => {
        Ok(ScalarValue { value: batch.column(0).clone() })
    }
    other => Err(Error::Invalid(format!("expected a one-value result for a Scalar, got {other:?}"))),
});

/// A fetched single value, of the column type it came from (missing when,
/// say, the mean of no values).
#[derive(Clone, Debug)]
pub struct ScalarValue {
    value: ArrayRef,
}

impl ScalarValue {
    /// The value as a float (numbers and bools), `None` when missing or not a number.
    pub fn as_f64(&self) -> Option<f64> {
        if self.value.is_null(0) || !mars_ir::agg::is_numeric(self.value.data_type()) {
            return None;
        }
        let f = arrow::compute::cast(&self.value, &arrow::datatypes::DataType::Float64).ok()?;
        f.as_any().downcast_ref::<arrow::array::Float64Array>().map(|a| a.value(0))
    }
    /// The value as an integer (integer and bool types only), `None` otherwise.
    pub fn as_i64(&self) -> Option<i64> {
        if self.value.is_null(0) || !mars_ir::agg::sums_as_int(self.value.data_type()) {
            return None;
        }
        let i = arrow::compute::cast(&self.value, &arrow::datatypes::DataType::Int64).ok()?;
        i.as_any().downcast_ref::<Int64Array>().map(|a| a.value(0))
    }
    /// The value as a one-element Arrow array.
    pub fn array(&self) -> &ArrayRef {
        &self.value
    }
    /// Whether the value is missing.
    pub fn is_null(&self) -> bool {
        self.value.is_null(0)
    }
}

impl PartialEq for ScalarValue {
    fn eq(&self, other: &Self) -> bool {
        self.value.to_data() == other.value.to_data()
    }
}

/// As Python prints the value: `60`, `2.5`, `nan` (a missing float), `'abc'`
/// strings without quotes, dates as `1998-09-02`.
impl std::fmt::Display for ScalarValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use arrow::datatypes::DataType;
        let float = matches!(self.value.data_type(), DataType::Float16 | DataType::Float32 | DataType::Float64);
        if self.value.is_null(0) {
            return f.write_str(if float { "nan" } else { "None" });
        }
        match (float, self.as_f64()) {
            (true, Some(v)) if v.is_nan() => f.write_str("nan"),
            (true, Some(v)) if v.is_infinite() => f.write_str(if v > 0.0 { "inf" } else { "-inf" }),
            (true, Some(v)) if v == v.trunc() && v.abs() < 1e16 => write!(f, "{v:.1}"),
            (true, Some(v)) => write!(f, "{v}"),
            _ => {
                let s = arrow::util::display::array_value_to_string(&self.value, 0).map_err(|_| std::fmt::Error)?;
                f.write_str(&s)
            }
        }
    }
}

/// `cond ? a : b` per row (`np.where` / a SQL `CASE WHEN`): `a` and `b` are
/// values or Series lined up with `cond`; a missing condition is false. The
/// result is named after `cond`.
pub fn where_(cond: &Series, a: impl Into<Operand>, b: impl Into<Operand>) -> Series {
    let mut inputs = vec![cond.node.clone()];
    let mut arg = |o: Operand| match o {
        Operand::Lit(l) => ColExpr::Lit(l),
        Operand::Series(s) => {
            inputs.push(s.node.clone());
            ColExpr::Input(inputs.len() - 1)
        }
    };
    let (a, b) = (arg(a.into()), arg(b.into()));
    let expr = ColExpr::Where(Box::new(ColExpr::Input(0)), Box::new(a), Box::new(b));
    Series { node: Node::new(Op::Frame(FrameOp::Eval { expr, name: cond.name() }), inputs) }
}

/// A fetched Series: its name and its values as one Arrow array.
#[derive(Clone, Debug)]
pub struct SeriesData {
    name: String,
    array: ArrayRef,
}

impl PartialEq for SeriesData {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name && self.array.to_data() == other.array.to_data()
    }
}

impl SeriesData {
    /// The values, as one Arrow array.
    pub fn array(&self) -> &ArrayRef {
        &self.array
    }
    /// The column's name.
    pub fn name(&self) -> &str {
        &self.name
    }
    /// Number of values.
    pub fn len(&self) -> usize {
        self.array.len()
    }
    /// Whether there are no values.
    pub fn is_empty(&self) -> bool {
        self.array.is_empty()
    }
}
