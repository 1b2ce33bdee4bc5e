use mars::prelude::*;
use mars::tensor as mt;
use mars::dataframe as md;
fn main() -> mars::Result<()> {
    let a = mt::ones(&[5, 4]).rechunk(2);
    let b = (&a + 1.0).sum();
    println!("{}", b.explain());
    println!("{}", b.execute()?.fetch()?);
    let x = mt::random::RandomState::new(0).rand(&[3, 2]);
    println!("{}", x.execute()?.fetch()?);
    let df = md::DataFrame::from_rows(vec![vec![1, 2], vec![3, 4]])?;
    println!("{}", df.execute()?.fetch()?);
    let f = mt::arange(0.0, 10.0, 1.0).rechunk(3);
    let g = f.filter(&f.gt(4.5));
    println!("{:?}", g.shape());
    let h = (&g * 2.0).reshape(&[5]).sum();
    println!("{}", h.execute()?.fetch()?);
    println!("{:?}", g.shape());
    let bad = mt::ones(&[3, 2]) + mt::ones(&[4]);
    println!("{}", bad.execute().unwrap_err());
    let m = mt::random::RandomState::new(1).rand(&[7, 5]).rechunk(3);
    println!("{}", m.std_axis(1).execute()?.fetch()?);
    println!("{}", m.dot(&m.t()).sum().execute()?.fetch()?);
    println!("{}", m.slice(mars::ndarray::s![1..6;2, ..;-1]).execute()?.fetch()?);
    let _ = Session::default_or_local()?;
    Ok(())
}
