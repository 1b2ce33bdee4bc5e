//! Element-wise expressions over a node's inputs.
//!
//! A tileable `a + 1` is one `Map` node whose expression is `(#0 + 1)`; fusion
//! composes such expressions, so a chain `((x + 1) * 2)` becomes one chunk op
//! that kernels evaluate in a single pass over memory.

use crate::dist::Distribution;
use crate::dtype::DType;
use crate::error::{IrError, IrResult};
use serde::{Deserialize, Serialize};
use std::fmt;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum UnaryFn {
    Neg,
    Exp,
    Log,
    Sqrt,
    Abs,
    /// Logical not (bool only).
    Not,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum BinaryFn {
    Add,
    Sub,
    Mul,
    Div,
    Pow,
    Gt,
    Lt,
    Ge,
    Le,
    Eq,
    Ne,
    And,
    Or,
}

impl BinaryFn {
    pub fn is_comparison(self) -> bool {
        use BinaryFn::*;
        matches!(self, Gt | Lt | Ge | Le | Eq | Ne)
    }
    pub fn is_logical(self) -> bool {
        matches!(self, BinaryFn::And | BinaryFn::Or)
    }
    pub fn symbol(self) -> &'static str {
        use BinaryFn::*;
        match self {
            Add => "+",
            Sub => "-",
            Mul => "*",
            Div => "/",
            Pow => "**",
            Gt => ">",
            Lt => "<",
            Ge => ">=",
            Le => "<=",
            Eq => "==",
            Ne => "!=",
            And => "&",
            Or => "|",
        }
    }
}

/// An element-wise expression. `Input(i)` is the node's i-th input; inputs are
/// broadcast against each other as in numpy.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Expr {
    Input(usize),
    /// A Python-style float scalar (NEP 50: it does not widen float32 arrays).
    Const(#[serde(with = "crate::serde_f64")] f64),
    Unary(UnaryFn, #[serde(deserialize_with = "nested")] Box<Expr>),
    Binary(BinaryFn, #[serde(deserialize_with = "nested")] Box<Expr>, #[serde(deserialize_with = "nested")] Box<Expr>),
    Cast(DType, #[serde(deserialize_with = "nested")] Box<Expr>),
    Where(
        #[serde(deserialize_with = "nested")] Box<Expr>,
        #[serde(deserialize_with = "nested")] Box<Expr>,
        #[serde(deserialize_with = "nested")] Box<Expr>,
    ),
    /// Random values generated in place (a `Random` chunk fused into its
    /// consumer, so the chunk is never materialised).
    Random(Box<RandomLeaf>),
}

/// Deepest expression a graph from outside may hold. Deserialising recurses,
/// and so do `dtype`, `Display` and the kernels; without a bound a crafted
/// file (bincode has no depth limit of its own) would overflow the stack.
pub const MAX_EXPR_DEPTH: usize = 256;

thread_local! {
    static DEPTH: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

fn nested<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Box<Expr>, D::Error> {
    let depth = DEPTH.with(|c| c.get());
    if depth >= MAX_EXPR_DEPTH {
        return Err(serde::de::Error::custom(format!("expression nested deeper than {MAX_EXPR_DEPTH} levels")));
    }
    DEPTH.with(|c| c.set(depth + 1));
    let out = Box::<Expr>::deserialize(d);
    DEPTH.with(|c| c.set(depth));
    out
}

/// The block at `offset` with `shape` of a random tensor of `global_shape`:
/// element `g` (its flat index in the whole tensor) is a pure function of
/// `(seed, g)`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RandomLeaf {
    pub seed: u64,
    pub dist: Distribution,
    pub global_shape: Vec<usize>,
    pub offset: Vec<usize>,
    pub shape: Vec<usize>,
}

impl RandomLeaf {
    pub fn dtype(&self) -> DType {
        match self.dist {
            Distribution::RandInt { .. } => DType::Int64,
            _ => DType::Float64,
        }
    }
}

impl Expr {
    pub fn input(i: usize) -> Expr {
        Expr::Input(i)
    }
    pub fn unary(f: UnaryFn, e: Expr) -> Expr {
        Expr::Unary(f, Box::new(e))
    }
    pub fn binary(f: BinaryFn, a: Expr, b: Expr) -> Expr {
        Expr::Binary(f, Box::new(a), Box::new(b))
    }

    /// The result dtype given the inputs' dtypes; errors name the bad dtype.
    pub fn dtype(&self, inputs: &[DType]) -> IrResult<DType> {
        Ok(match self {
            Expr::Input(i) => *inputs
                .get(*i)
                .ok_or_else(|| IrError::Graph(format!("expression refers to input #{i} of {}", inputs.len())))?,
            Expr::Const(_) => DType::Float64,
            Expr::Random(r) => r.dtype(),
            Expr::Cast(d, e) => {
                e.dtype(inputs)?;
                if !d.is_numeric() {
                    return Err(IrError::DType(format!("cannot cast a tensor to {d}")));
                }
                *d
            }
            Expr::Unary(f, e) => {
                let d = e.dtype(inputs)?;
                match f {
                    UnaryFn::Not if d != DType::Bool => {
                        return Err(IrError::DType(format!("logical not needs a bool operand, got {d}")))
                    }
                    UnaryFn::Not => DType::Bool,
                    UnaryFn::Neg if d == DType::Bool => {
                        return Err(IrError::DType(
                            "negative of a bool tensor is not supported, use logical not".into(),
                        ))
                    }
                    UnaryFn::Neg | UnaryFn::Abs => d,
                    UnaryFn::Exp | UnaryFn::Log | UnaryFn::Sqrt => float_of(d),
                }
            }
            Expr::Binary(f, a, b) => {
                let (da, db) = (a.dtype(inputs)?, b.dtype(inputs)?);
                let joined = match (a.as_ref(), b.as_ref()) {
                    (Expr::Const(_), Expr::Const(_)) => DType::Float64,
                    (Expr::Const(_), _) => db.with_float_scalar(),
                    (_, Expr::Const(_)) => da.with_float_scalar(),
                    _ => DType::promote(da, db),
                };
                if f.is_comparison() {
                    DType::Bool
                } else if f.is_logical() {
                    if da != DType::Bool || db != DType::Bool {
                        return Err(IrError::DType(format!(
                            "operator {} needs bool operands, got {da} and {db}",
                            f.symbol()
                        )));
                    }
                    DType::Bool
                } else if *f == BinaryFn::Div {
                    float_of(joined)
                } else if joined == DType::Bool {
                    // numpy: bool + bool stays bool for +,*; we keep integer arithmetic simple
                    DType::Int64
                } else {
                    joined
                }
            }
            Expr::Where(c, a, b) => {
                let dc = c.dtype(inputs)?;
                if dc != DType::Bool {
                    return Err(IrError::DType(format!("where_ needs a bool condition, got {dc}")));
                }
                let (da, db) = (a.dtype(inputs)?, b.dtype(inputs)?);
                DType::promote(da, db)
            }
        })
    }

    /// Replace every `Input(i)` with `f(i)`.
    pub fn substitute(&self, f: &mut impl FnMut(usize) -> Expr) -> Expr {
        match self {
            Expr::Input(i) => f(*i),
            Expr::Const(c) => Expr::Const(*c),
            Expr::Random(r) => Expr::Random(r.clone()),
            Expr::Unary(u, e) => Expr::Unary(*u, Box::new(e.substitute(f))),
            Expr::Binary(b, x, y) => Expr::Binary(*b, Box::new(x.substitute(f)), Box::new(y.substitute(f))),
            Expr::Cast(d, e) => Expr::Cast(*d, Box::new(e.substitute(f))),
            Expr::Where(c, x, y) => {
                Expr::Where(Box::new(c.substitute(f)), Box::new(x.substitute(f)), Box::new(y.substitute(f)))
            }
        }
    }

    /// The shape of the first random leaf (the chunk shape when an expression
    /// has no inputs left).
    pub fn random_shape(&self) -> Option<&[usize]> {
        match self {
            Expr::Random(r) => Some(&r.shape),
            Expr::Input(_) | Expr::Const(_) => None,
            Expr::Unary(_, e) | Expr::Cast(_, e) => e.random_shape(),
            Expr::Binary(_, a, b) => a.random_shape().or_else(|| b.random_shape()),
            Expr::Where(c, a, b) => c.random_shape().or_else(|| a.random_shape()).or_else(|| b.random_shape()),
        }
    }

    /// Number of operator nodes (for explain and fusion limits).
    pub fn size(&self) -> usize {
        match self {
            Expr::Input(_) | Expr::Const(_) | Expr::Random(_) => 1,
            Expr::Unary(_, e) | Expr::Cast(_, e) => 1 + e.size(),
            Expr::Binary(_, a, b) => 1 + a.size() + b.size(),
            Expr::Where(c, a, b) => 1 + c.size() + a.size() + b.size(),
        }
    }
}

fn float_of(d: DType) -> DType {
    if d.is_float() {
        d
    } else {
        DType::Float64
    }
}

impl fmt::Display for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Expr::Input(i) => write!(f, "#{i}"),
            Expr::Const(c) => write!(f, "{c}"),
            Expr::Random(r) => write!(f, "random({:?}, seed={}, offset={:?})", r.dist, r.seed, r.offset),
            Expr::Unary(UnaryFn::Neg, e) => write!(f, "-{e}"),
            Expr::Unary(UnaryFn::Not, e) => write!(f, "!{e}"),
            Expr::Unary(u, e) => write!(f, "{}({e})", format!("{u:?}").to_lowercase()),
            Expr::Binary(b, x, y) => write!(f, "({x} {} {y})", b.symbol()),
            Expr::Cast(d, e) => write!(f, "astype({e}, {d})"),
            Expr::Where(c, x, y) => write!(f, "where({c}, {x}, {y})"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dtypes_follow_numpy() {
        let add1 = Expr::binary(BinaryFn::Add, Expr::input(0), Expr::Const(1.0));
        assert_eq!(add1.dtype(&[DType::Int32]).unwrap(), DType::Float64);
        assert_eq!(add1.dtype(&[DType::Float32]).unwrap(), DType::Float32);
        let cmp = Expr::binary(BinaryFn::Gt, Expr::input(0), Expr::input(1));
        assert_eq!(cmp.dtype(&[DType::Int32, DType::Float64]).unwrap(), DType::Bool);
        let bad = Expr::binary(BinaryFn::And, Expr::input(0), Expr::input(1));
        assert!(bad.dtype(&[DType::Int32, DType::Bool]).unwrap_err().to_string().contains("int32"));
        assert_eq!(add1.to_string(), "(#0 + 1)");
    }

    #[test]
    fn deep_expressions_are_refused_when_read() {
        let mut e = Expr::input(0);
        for _ in 0..MAX_EXPR_DEPTH + 10 {
            e = Expr::unary(UnaryFn::Neg, e);
        }
        let bytes = bincode::serialize(&e).unwrap();
        let err = bincode::deserialize::<Expr>(&bytes).unwrap_err().to_string();
        assert!(err.contains("nested deeper than 256"), "{err}");
        // the guard resets: a shallow one still reads on the same thread
        let ok = Expr::unary(UnaryFn::Neg, Expr::input(0));
        assert_eq!(bincode::deserialize::<Expr>(&bincode::serialize(&ok).unwrap()).unwrap(), ok);
    }
}
