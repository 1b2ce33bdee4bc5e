//! Save the tileable graph of `((x + 1) * 2).sum(axis 1)` for the `mars` tool.
//!
//! `cargo run -p mars --example save_graph -- graph.json [ROWS]`

use mars::tensor as mt;

fn main() -> mars::Result<()> {
    let path = std::env::args().nth(1).unwrap_or_else(|| "graph.json".into());
    let rows: usize = std::env::args().nth(2).and_then(|r| r.parse().ok()).unwrap_or(4000);
    let x = mt::random::RandomState::new(7).rand(&[rows, 1000]).rechunk(&[1000, 1000]);
    let y = ((&x + 1.0) * 2.0).sum_axis(1);
    mars::save_graph(&[&y], &path)?;
    println!("saved {path}");
    Ok(())
}
