//! Shape and dtype inference: the first place bad input is caught, with errors
//! naming the shapes, axes and dtypes involved.

use crate::dtype::DType;
use crate::error::{IrError, IrResult};
use crate::op::{FrameOp, Op, SliceElem, TensorOp};
use crate::shape::{check_size, dims, fmt_shape, Dim, Meta};

/// numpy broadcasting of several shapes; unknown lengths broadcast with known
/// ones only when the known one is not 1 … or is equal. An unknown against 1 gives unknown.
pub fn broadcast_shapes(shapes: &[&[Dim]]) -> IrResult<Vec<Dim>> {
    let ndim = shapes.iter().map(|s| s.len()).max().unwrap_or(0);
    let mut out = vec![Dim::Known(1); ndim];
    for s in shapes {
        let off = ndim - s.len();
        for (i, &d) in s.iter().enumerate() {
            let o = &mut out[off + i];
            *o = match (*o, d) {
                (Dim::Known(1), x) | (x, Dim::Known(1)) => x,
                (Dim::Known(a), Dim::Known(b)) if a == b => Dim::Known(a),
                (Dim::Unknown, Dim::Unknown) => Dim::Unknown,
                (Dim::Unknown, k @ Dim::Known(_)) | (k @ Dim::Known(_), Dim::Unknown) => k,
                _ => {
                    let all: Vec<String> = shapes.iter().map(|s| fmt_shape(s)).collect();
                    return Err(IrError::Broadcast(all.join(" ")));
                }
            };
        }
    }
    Ok(out)
}

fn tensor_of(m: &Meta, what: &str) -> IrResult<(Vec<Dim>, DType)> {
    match m {
        Meta::Tensor { shape, dtype } => Ok((shape.clone(), *dtype)),
        Meta::Frame { .. } => Err(IrError::Invalid(format!("{what} needs a tensor input, got a dataframe"))),
    }
}

fn check_axis(axis: usize, ndim: usize) -> IrResult<()> {
    if axis >= ndim {
        Err(IrError::Axis { axis, ndim })
    } else {
        Ok(())
    }
}

/// The meta of a tileable computed by `op` from inputs with `inputs` metas.
pub fn infer(op: &Op, inputs: &[&Meta]) -> IrResult<Meta> {
    let want = |n: usize| -> IrResult<()> {
        if inputs.len() != n {
            Err(IrError::Graph(format!("{op} takes {n} inputs, got {}", inputs.len())))
        } else {
            Ok(())
        }
    };
    match op {
        Op::Fetch { .. } => Err(IrError::Graph("a Fetch node's meta comes from the result it fetches".into())),
        Op::Frame(FrameOp::FromBatch { schema, rows, rows_per_chunk, .. }) => {
            want(0)?;
            if *rows_per_chunk == Some(0) {
                return Err(IrError::Invalid("rows_per_chunk must be positive, got 0".into()));
            }
            crate::frame::check_schema(schema)?;
            Ok(Meta::Frame { schema: schema.clone(), nrows: Dim::Known(*rows) })
        }
        Op::Frame(FrameOp::Head { n }) => {
            want(1)?;
            let Meta::Frame { schema, nrows } = inputs[0] else {
                return Err(IrError::Invalid("head needs a dataframe input, got a tensor".into()));
            };
            let nrows = match nrows {
                Dim::Known(r) => Dim::Known((*r).min(*n)),
                Dim::Unknown if *n == 0 => Dim::Known(0),
                Dim::Unknown => Dim::Unknown,
            };
            Ok(Meta::Frame { schema: schema.clone(), nrows })
        }
        Op::Frame(FrameOp::Eval { expr, name }) => {
            if inputs.is_empty() {
                return Err(IrError::Graph("a Series expression needs at least one input".into()));
            }
            let mut types = Vec::with_capacity(inputs.len());
            let mut nrows = None;
            for m in inputs {
                match m {
                    Meta::Frame { schema, nrows: n } if schema.fields().len() == 1 => {
                        types.push(schema.field(0).data_type().clone());
                        nrows = Some(match (nrows, n) {
                            (None, n) | (Some(Dim::Unknown), n) => *n,
                            (Some(Dim::Known(a)), Dim::Known(b)) if a != *b => {
                                return Err(IrError::Invalid(format!("Series of {a} and {b} rows do not align")))
                            }
                            (Some(k), _) => k,
                        });
                    }
                    _ => return Err(IrError::Invalid("a Series expression takes Series (one column) inputs".into())),
                }
            }
            let dt = expr.data_type(&types)?;
            let field = arrow_schema::Field::new(name, dt, true);
            let schema = std::sync::Arc::new(arrow_schema::Schema::new(vec![field]));
            Ok(Meta::Frame { schema, nrows: nrows.unwrap_or(Dim::Unknown) })
        }
        Op::Frame(FrameOp::Filter) => {
            want(2)?;
            let (Meta::Frame { schema, .. }, Meta::Frame { schema: mask, .. }) = (inputs[0], inputs[1]) else {
                return Err(IrError::Invalid("filter takes a dataframe and a bool Series".into()));
            };
            if mask.fields().len() != 1 || mask.field(0).data_type() != &arrow_schema::DataType::Boolean {
                return Err(IrError::DType(format!("a filter mask must be one bool column, got {mask}")));
            }
            Ok(Meta::Frame { schema: schema.clone(), nrows: Dim::Unknown })
        }
        Op::Frame(FrameOp::WithColumn { name }) => {
            want(2)?;
            let (Meta::Frame { schema, nrows }, Meta::Frame { schema: col, nrows: col_rows }) = (inputs[0], inputs[1])
            else {
                return Err(IrError::Invalid("with_column takes a dataframe and a Series".into()));
            };
            if col.fields().len() != 1 {
                return Err(IrError::Invalid(format!(
                    "with_column needs a Series (one column), got {}",
                    col.fields().len()
                )));
            }
            if let (Dim::Known(a), Dim::Known(b)) = (nrows, col_rows) {
                if a != b {
                    return Err(IrError::Invalid(format!("a Series of {b} rows for a frame of {a} rows")));
                }
            }
            let (fields, _) = crate::frame::with_column(schema, name, col.field(0));
            Ok(Meta::Frame { schema: std::sync::Arc::new(arrow_schema::Schema::new(fields)), nrows: *nrows })
        }
        Op::Frame(FrameOp::ReadParquet { files, columns, schema, filter }) => {
            want(0)?;
            if files.is_empty() {
                return Err(IrError::Invalid("read_parquet needs at least one file".into()));
            }
            let names: Vec<&String> = schema.fields().iter().map(|f| f.name()).collect();
            if names.len() != columns.len() || names.iter().zip(columns).any(|(a, b)| *a != b) {
                return Err(IrError::Invalid(format!("read_parquet columns {columns:?} but a schema of {names:?}")));
            }
            crate::frame::check_schema(schema)?;
            let rows = files.iter().try_fold(0usize, |acc, f| acc.checked_add(f.rows()).filter(|&r| r < usize::MAX));
            let rows = rows.ok_or_else(|| IrError::Invalid("read_parquet row counts overflow".into()))?;
            let nrows = match filter {
                Some(f) => {
                    f.check()?;
                    Dim::Unknown
                }
                None => Dim::Known(rows),
            };
            Ok(Meta::Frame { schema: schema.clone(), nrows })
        }
        Op::Frame(FrameOp::ReadCsv { files, file_schema, columns, schema, .. }) => {
            want(0)?;
            if files.is_empty() {
                return Err(IrError::Invalid("read_csv needs at least one file".into()));
            }
            let indices = crate::frame::column_indices(file_schema, columns)?;
            if **schema != file_schema.project(&indices).map_err(|e| IrError::Invalid(e.to_string()))? {
                return Err(IrError::Invalid(format!("read_csv columns {columns:?} do not match its schema")));
            }
            crate::frame::check_schema(file_schema)?;
            Ok(Meta::Frame { schema: schema.clone(), nrows: Dim::Unknown })
        }
        Op::Frame(FrameOp::Quantiles { qs }) => {
            want(1)?;
            if let Some(q) = qs.iter().find(|q| !(0.0..=1.0).contains(*q)) {
                return Err(IrError::Invalid(format!("a quantile must be between 0 and 1, got {q}")));
            }
            let Meta::Frame { schema, .. } = inputs[0] else {
                return Err(IrError::Invalid("quantiles need a Series input, got a tensor".into()));
            };
            let [field] = schema.fields().as_ref() else {
                return Err(IrError::Invalid(format!("quantiles need one column, got {}", schema.fields().len())));
            };
            if !crate::agg::is_numeric(field.data_type()) {
                return Err(IrError::DType(format!(
                    "quantiles need a numeric column; {:?} is {}",
                    field.name(),
                    crate::frame::type_name(field.data_type())
                )));
            }
            let out = arrow_schema::Field::new(field.name(), arrow_schema::DataType::Float64, true);
            Ok(Meta::Frame {
                schema: std::sync::Arc::new(arrow_schema::Schema::new(vec![out])),
                nrows: Dim::Known(qs.len()),
            })
        }
        Op::Frame(FrameOp::Describe { columns }) => {
            want(1 + columns.len())?;
            let widths: Vec<usize> = inputs
                .iter()
                .map(|m| match m {
                    Meta::Frame { schema, .. } => Ok(schema.fields().len()),
                    Meta::Tensor { .. } => Err(IrError::Invalid("describe's inputs are frames".into())),
                })
                .collect::<IrResult<_>>()?;
            if widths[0] != 5 * columns.len() || widths[1..].iter().any(|&w| w != 1) {
                return Err(IrError::Invalid(format!(
                    "describe of {} columns takes a stats row of {} columns and a quantile column each; got widths {widths:?}",
                    columns.len(),
                    5 * columns.len()
                )));
            }
            let mut fields = vec![arrow_schema::Field::new("", arrow_schema::DataType::Utf8, false)];
            fields.extend(columns.iter().map(|c| arrow_schema::Field::new(c, arrow_schema::DataType::Float64, true)));
            Ok(Meta::Frame { schema: std::sync::Arc::new(arrow_schema::Schema::new(fields)), nrows: Dim::Known(8) })
        }
        Op::Frame(FrameOp::DropDuplicates) => {
            want(1)?;
            let Meta::Frame { schema, .. } = inputs[0] else {
                return Err(IrError::Invalid("drop_duplicates needs a dataframe input, got a tensor".into()));
            };
            Ok(Meta::Frame { schema: schema.clone(), nrows: Dim::Unknown })
        }
        Op::Frame(FrameOp::SortHead { by, n }) => {
            let sorted = infer(&Op::Frame(FrameOp::Sort { by: by.clone() }), inputs)?;
            let Meta::Frame { schema, nrows } = sorted else {
                return Err(IrError::Invalid("sort_values needs a dataframe input, got a tensor".into()));
            };
            let nrows = match nrows {
                Dim::Known(r) => Dim::Known(r.min(*n)),
                Dim::Unknown if *n == 0 => Dim::Known(0),
                Dim::Unknown => Dim::Unknown,
            };
            Ok(Meta::Frame { schema, nrows })
        }
        Op::Frame(FrameOp::Sort { by }) => {
            want(1)?;
            let Meta::Frame { schema, nrows } = inputs[0] else {
                return Err(IrError::Invalid("sort_values needs a dataframe input, got a tensor".into()));
            };
            if by.is_empty() {
                return Err(IrError::Invalid("sort_values needs at least one column".into()));
            }
            let names: Vec<String> = by.iter().map(|(c, _)| c.clone()).collect();
            for i in crate::frame::column_indices(schema, &names)? {
                let f = schema.field(i);
                if !crate::agg::is_ordered(f.data_type()) {
                    return Err(IrError::DType(format!(
                        "cannot sort by column {:?} of type {}",
                        f.name(),
                        crate::frame::type_name(f.data_type())
                    )));
                }
            }
            Ok(Meta::Frame { schema: schema.clone(), nrows: *nrows })
        }
        Op::Frame(FrameOp::Merge { left_on, right_on, .. }) => {
            want(2)?;
            let (Meta::Frame { schema: l, .. }, Meta::Frame { schema: r, .. }) = (inputs[0], inputs[1]) else {
                return Err(IrError::Invalid("merge takes two dataframes".into()));
            };
            let (_, _, _, schema) = crate::join::merge_schema(l, r, left_on, right_on)?;
            Ok(Meta::Frame { schema: std::sync::Arc::new(schema), nrows: Dim::Unknown })
        }
        Op::Frame(FrameOp::GroupPartial { keys, aggs }) => {
            want(1)?;
            let Meta::Frame { schema, .. } = inputs[0] else {
                return Err(IrError::Invalid("groupby needs a dataframe input, got a tensor".into()));
            };
            let (_, _, partial) = crate::agg::partial_schema(schema, keys, aggs)?;
            Ok(Meta::Frame { schema: std::sync::Arc::new(partial), nrows: Dim::Unknown })
        }
        Op::Frame(FrameOp::GroupAgg { nkeys, aggs, .. }) => {
            want(1)?;
            let Meta::Frame { schema, .. } = inputs[0] else {
                return Err(IrError::Invalid("a groupby's merge needs its partial states, got a tensor".into()));
            };
            let out = crate::agg::result_schema(schema, *nkeys, aggs)?;
            Ok(Meta::Frame { schema: std::sync::Arc::new(out), nrows: Dim::Unknown })
        }
        Op::Frame(FrameOp::Select { columns }) => {
            want(1)?;
            let Meta::Frame { schema, nrows } = inputs[0] else {
                return Err(IrError::Invalid("selecting columns needs a dataframe input, got a tensor".into()));
            };
            let indices = crate::frame::column_indices(schema, columns)?;
            let projected = schema.project(&indices).map_err(|e| IrError::Invalid(e.to_string()))?;
            Ok(Meta::Frame { schema: std::sync::Arc::new(projected), nrows: *nrows })
        }
        Op::Tensor(t) => infer_tensor(t, inputs, &want),
    }
}

fn infer_tensor(t: &TensorOp, inputs: &[&Meta], want: &dyn Fn(usize) -> IrResult<()>) -> IrResult<Meta> {
    use TensorOp::*;
    let check_chunks = |chunks: &Option<Vec<usize>>, ndim: usize| -> IrResult<()> {
        if let Some(c) = chunks {
            if c.len() != ndim || c.contains(&0) {
                return Err(IrError::Invalid(format!(
                    "chunk sizes {c:?} do not fit a {ndim}-d tensor (one positive size per axis)"
                )));
            }
        }
        Ok(())
    };
    Ok(match t {
        Full { shape, dtype, chunks, .. } => {
            want(0)?;
            check_chunks(chunks, shape.len())?;
            if !dtype.is_numeric() {
                return Err(IrError::DType(format!("a tensor cannot hold {dtype} elements")));
            }
            check_size(shape, dtype.itemsize())?;
            Meta::tensor(dims(shape), *dtype)
        }
        Arange { n, chunks, .. } => {
            want(0)?;
            check_chunks(chunks, 1)?;
            check_size(&[*n], 8)?;
            Meta::tensor(dims(&[*n]), DType::Float64)
        }
        Random { shape, dist, chunks, .. } => {
            want(0)?;
            check_chunks(chunks, shape.len())?;
            check_size(shape, 8)?;
            let dtype = match dist {
                crate::op::Distribution::RandInt { low, high } => {
                    if high <= low {
                        return Err(IrError::Invalid(format!("randint: low ({low}) must be below high ({high})")));
                    }
                    DType::Int64
                }
                _ => DType::Float64,
            };
            Meta::tensor(dims(shape), dtype)
        }
        Literal { shape, dtype, chunks, .. } => {
            want(0)?;
            check_chunks(chunks, shape.len())?;
            crate::shape::check_size(shape, dtype.itemsize())?;
            if !dtype.is_numeric() {
                return Err(IrError::DType(format!("a tensor holds numbers or bools, not {dtype}")));
            }
            Meta::tensor(dims(shape), *dtype)
        }
        Map { expr } => {
            if inputs.is_empty() {
                return Err(IrError::Graph("an element-wise Map needs at least one input".into()));
            }
            if expr.random_shape().is_some() {
                return Err(IrError::Graph(
                    "random leaves appear only in fused chunk ops, not in a tileable Map".into(),
                ));
            }
            let metas: Vec<(Vec<Dim>, DType)> =
                inputs.iter().map(|m| tensor_of(m, "an element-wise op")).collect::<IrResult<_>>()?;
            let shapes: Vec<&[Dim]> = metas.iter().map(|(s, _)| s.as_slice()).collect();
            let dtypes: Vec<DType> = metas.iter().map(|(_, d)| *d).collect();
            Meta::tensor(broadcast_shapes(&shapes)?, expr.dtype(&dtypes)?)
        }
        Reduce { func, axes } => {
            want(1)?;
            let (shape, dtype) = tensor_of(inputs[0], "a reduction")?;
            for &a in axes {
                check_axis(a, shape.len())?;
            }
            if func.is_arg() && axes.len() > 1 && axes.len() != shape.len() {
                return Err(IrError::Invalid(format!("{} takes one axis or all", func.name())));
            }
            let out: Vec<Dim> = shape.iter().enumerate().filter(|(i, _)| !axes.contains(i)).map(|(_, &d)| d).collect();
            Meta::tensor(out, func.out_dtype(dtype))
        }
        Dot => {
            want(2)?;
            let (a, da) = tensor_of(inputs[0], "dot")?;
            let (b, db) = tensor_of(inputs[1], "dot")?;
            if a.is_empty() || b.is_empty() || a.len() > 2 || b.len() > 2 {
                return Err(IrError::Invalid(format!(
                    "dot takes 1-D or 2-D operands, got shapes {} and {}",
                    fmt_shape(&a),
                    fmt_shape(&b)
                )));
            }
            let (ka, kb) = (a.len() - 1, 0);
            if let (Dim::Known(x), Dim::Known(y)) = (a[ka], b[kb]) {
                if x != y {
                    return Err(IrError::DotMismatch {
                        lhs: fmt_shape(&a),
                        rhs: fmt_shape(&b),
                        lhs_dim: x,
                        lhs_axis: ka,
                        rhs_dim: y,
                        rhs_axis: kb,
                    });
                }
            }
            let mut out: Vec<Dim> = a[..ka].to_vec();
            out.extend_from_slice(&b[1..]);
            let dtype = DType::promote(da, db);
            Meta::tensor(out, if dtype == DType::Bool { DType::Int64 } else { dtype })
        }
        Transpose { axes } => {
            want(1)?;
            let (shape, dtype) = tensor_of(inputs[0], "transpose")?;
            let mut sorted = axes.clone();
            sorted.sort_unstable();
            if sorted != (0..shape.len()).collect::<Vec<_>>() {
                return Err(IrError::Invalid(format!("axes {axes:?} don't match array of dimension {}", shape.len())));
            }
            Meta::tensor(axes.iter().map(|&a| shape[a]).collect(), dtype)
        }
        Reshape { shape: new } => {
            want(1)?;
            let (shape, dtype) = tensor_of(inputs[0], "reshape")?;
            let new_size = check_size(new, dtype.itemsize())?;
            if let Some(known) = crate::shape::known_shape(&shape) {
                let size: usize = known.iter().product();
                if size != new_size {
                    return Err(IrError::Reshape { size, shape: fmt_shape(new) });
                }
            }
            Meta::tensor(dims(new), dtype)
        }
        Slice { elems } => {
            want(1)?;
            let (shape, dtype) = tensor_of(inputs[0], "slice")?;
            Meta::tensor(slice_shape(&shape, elems)?, dtype)
        }
        Concatenate { axis } => {
            if inputs.is_empty() {
                return Err(IrError::Invalid("need at least one array to concatenate".into()));
            }
            let metas: Vec<(Vec<Dim>, DType)> =
                inputs.iter().map(|m| tensor_of(m, "concatenate")).collect::<IrResult<_>>()?;
            let (first, mut dtype) = metas[0].clone();
            check_axis(*axis, first.len())?;
            let mut out = first.clone();
            for (s, d) in &metas[1..] {
                let same_rank = s.len() == first.len();
                let same_other = same_rank
                    && s.iter()
                        .zip(&first)
                        .enumerate()
                        .all(|(i, (x, y))| i == *axis || !x.is_known() || !y.is_known() || x == y);
                if !same_other {
                    return Err(IrError::Invalid(format!(
                        "all the input array dimensions except for the concatenation axis {axis} must match exactly, got shapes {} and {}",
                        fmt_shape(&first),
                        fmt_shape(s)
                    )));
                }
                out[*axis] = match (out[*axis], s[*axis]) {
                    (Dim::Known(a), Dim::Known(b)) => Dim::Known(a.checked_add(b).ok_or_else(|| {
                        IrError::Invalid(format!("concatenate: axis {axis} would be longer than {}", usize::MAX))
                    })?),
                    _ => Dim::Unknown,
                };
                dtype = DType::promote(dtype, *d);
            }
            Meta::tensor(out, dtype)
        }
        Filter => {
            want(2)?;
            let (shape, dtype) = tensor_of(inputs[0], "filter")?;
            let (mshape, mdtype) = tensor_of(inputs[1], "filter")?;
            if mdtype != DType::Bool {
                return Err(IrError::DType(format!("filter needs a bool mask, got {mdtype}")));
            }
            let compatible = |a: &[Dim], b: &[Dim]| {
                a.len() == b.len() && a.iter().zip(b).all(|(x, y)| !x.is_known() || !y.is_known() || x == y)
            };
            if compatible(&shape, &mshape) {
                Meta::tensor(vec![Dim::Unknown], dtype)
            } else if mshape.len() == 1 && !shape.is_empty() && compatible(&shape[..1], &mshape) {
                let mut out = shape.clone();
                out[0] = Dim::Unknown;
                Meta::tensor(out, dtype)
            } else {
                return Err(IrError::Invalid(format!(
                    "boolean index of shape {} does not match the indexed array of shape {}",
                    fmt_shape(&mshape),
                    fmt_shape(&shape)
                )));
            }
        }
        Rechunk { chunks } => {
            want(1)?;
            let (shape, dtype) = tensor_of(inputs[0], "rechunk")?;
            if chunks.len() != shape.len() || chunks.contains(&0) {
                return Err(IrError::Invalid(format!(
                    "chunk sizes {chunks:?} do not fit a tensor of shape {} (one positive size per axis)",
                    fmt_shape(&shape)
                )));
            }
            Meta::tensor(shape, dtype)
        }
    })
}

/// One axis of a slice resolved against a known length: the selected indices
/// are `first, first+step, …` (`count` of them); `step` may be negative.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AxisSel {
    pub first: isize,
    pub step: isize,
    pub count: usize,
}

/// Resolve `start..end;step` (ndarray semantics) against length `len`.
pub fn resolve_slice(start: isize, end: Option<isize>, step: isize, len: usize, axis: usize) -> IrResult<AxisSel> {
    if step == 0 {
        return Err(IrError::Slice(format!("slice step cannot be zero (axis {axis})")));
    }
    let abs = |i: isize| -> Option<usize> {
        let v = if i < 0 { len as isize + i } else { i };
        (0..=len as isize).contains(&v).then_some(v as usize)
    };
    let s = abs(start).ok_or_else(|| {
        IrError::Slice(format!("slice start {start} is out of bounds for axis {axis} with size {len}"))
    })?;
    let e = match end {
        None => len,
        Some(e) => abs(e)
            .ok_or_else(|| IrError::Slice(format!("slice end {e} is out of bounds for axis {axis} with size {len}")))?,
    };
    let e = e.max(s);
    let n = e - s;
    let astep = step.unsigned_abs();
    let count = n.div_ceil(astep);
    // ndarray walks a negative step back from the end of the range
    let first = if step > 0 { s as isize } else { e as isize - 1 };
    Ok(AxisSel { first, step, count })
}

/// Output shape of a slice; unknown input lengths are only allowed on full `..` axes.
pub fn slice_shape(shape: &[Dim], elems: &[SliceElem]) -> IrResult<Vec<Dim>> {
    let consumed = elems.iter().filter(|e| !matches!(e, SliceElem::NewAxis)).count();
    if consumed > shape.len() {
        return Err(IrError::Slice(format!(
            "too many indices for array: array is {}-dimensional, but {consumed} were indexed",
            shape.len()
        )));
    }
    let mut out = Vec::new();
    let mut axis = 0;
    for e in elems {
        match *e {
            SliceElem::NewAxis => out.push(Dim::Known(1)),
            SliceElem::Index(i) => {
                if let Dim::Known(len) = shape[axis] {
                    let v = if i < 0 { len as isize + i } else { i };
                    if v < 0 || v >= len as isize {
                        return Err(IrError::Slice(format!(
                            "index {i} is out of bounds for axis {axis} with size {len}"
                        )));
                    }
                }
                axis += 1;
            }
            SliceElem::Slice { start, end, step } => {
                out.push(match shape[axis] {
                    Dim::Known(len) => Dim::Known(resolve_slice(start, end, step, len, axis)?.count),
                    Dim::Unknown if start == 0 && end.is_none() && step == 1 => Dim::Unknown,
                    Dim::Unknown => Dim::Unknown,
                });
                axis += 1;
            }
        }
    }
    out.extend_from_slice(&shape[axis..]);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broadcast_error_names_shapes() {
        let err = broadcast_shapes(&[&dims(&[3, 2]), &dims(&[4])]).unwrap_err();
        assert_eq!(err.to_string(), "operands could not be broadcast together with shapes (3, 2) (4,)");
        assert_eq!(broadcast_shapes(&[&dims(&[3, 1]), &dims(&[4])]).unwrap(), dims(&[3, 4]));
    }

    #[test]
    fn slices_follow_ndarray() {
        assert_eq!(resolve_slice(0, None, 2, 5, 0).unwrap(), AxisSel { first: 0, step: 2, count: 3 });
        // ndarray: s![1..5;-2] on 0..6 gives [4, 2]
        assert_eq!(resolve_slice(1, Some(5), -2, 6, 0).unwrap(), AxisSel { first: 4, step: -2, count: 2 });
        assert_eq!(resolve_slice(0, None, -2, 6, 0).unwrap(), AxisSel { first: 5, step: -2, count: 3 });
        assert!(resolve_slice(0, Some(9), 1, 5, 1).unwrap_err().to_string().contains("axis 1 with size 5"));
    }
}
