//! insta snapshots of `explain()` for tiled chunk graphs: one or more per tile
//! rule, and the fusion pass. Read every changed `.snap` before accepting it.

use mars::ndarray::{arr2, s, Array1};
use mars::tensor as mt;
use mars::{explain_tiled, Tileable};

fn tiled(t: &dyn Tileable) -> String {
    explain_tiled(t, None, false).expect("tiles")
}

fn fused(t: &dyn Tileable) -> String {
    explain_tiled(t, None, true).expect("tiles")
}

fn x(shape: &[usize], chunks: &[usize]) -> mt::Tensor {
    mt::random::RandomState::new(42).rand(shape).rechunk(chunks)
}

#[test]
fn tileable_graph_with_rechunk_folded_into_source() {
    let t = (mt::ones(&[4, 4]).rechunk(2) + 1.0).sum();
    insta::assert_snapshot!("tileable_folded_rechunk", t.explain());
}

#[test]
fn creation_chunks_by_byte_budget() {
    let t = mt::ones(&[100, 100]);
    insta::assert_snapshot!("creation_budget", explain_tiled(&t, Some(8 * 100 * 40), false).unwrap());
}

#[test]
fn creation_random_literal_arange() {
    insta::assert_snapshot!("creation_random", tiled(&x(&[5, 3], &[2, 3])));
    let lit = mt::tensor(arr2(&[[1i64, 2, 3], [4, 5, 6]])).rechunk(&[1, 2]);
    insta::assert_snapshot!("creation_literal", tiled(&lit));
    insta::assert_snapshot!("creation_arange", tiled(&mt::arange(0.0, 10.0, 1.0).rechunk(4)));
}

#[test]
fn elementwise_same_chunks() {
    insta::assert_snapshot!("elementwise", tiled(&(x(&[4, 4], &[2, 2]) * 3.0)));
}

#[test]
fn elementwise_unifies_different_chunkings() {
    let t = &x(&[6], &[4]) + &mt::ones(&[6]).rechunk(3);
    insta::assert_snapshot!("elementwise_unify", tiled(&t));
}

#[test]
fn elementwise_broadcasts_across_grids() {
    let t = &x(&[4, 3], &[2, 2]) - &mt::tensor(Array1::from(vec![1.0, 2.0, 3.0]));
    insta::assert_snapshot!("elementwise_broadcast", tiled(&t));
}

#[test]
fn where_and_astype() {
    let a = x(&[4], &[2]);
    let t = mt::where_(&a.gt(0.5), &a, &(&a * -1.0)).astype(mt::DType::Float32);
    insta::assert_snapshot!("where_astype", tiled(&t));
}

#[test]
fn reduction_full_tree() {
    insta::assert_snapshot!("reduction_full_tree", tiled(&mt::ones(&[10]).rechunk(1).sum()));
}

#[test]
fn reduction_axes() {
    insta::assert_snapshot!("reduction_axis0", tiled(&x(&[4, 6], &[2, 3]).sum_axis(0)));
    insta::assert_snapshot!("reduction_std_axis1", tiled(&x(&[4, 6], &[2, 3]).std_axis(1)));
    insta::assert_snapshot!("reduction_argmax", tiled(&x(&[4, 6], &[2, 3]).argmax()));
}

#[test]
fn dot_block_products() {
    let a = x(&[4, 4], &[2, 2]);
    insta::assert_snapshot!("dot", tiled(&a.dot(&a.t())));
    // 6 inner blocks: two MatMul chunks of up to 4 pairs, then one add
    let (l, r) = (x(&[2, 12], &[2, 2]), x(&[12, 2], &[2, 2]));
    insta::assert_snapshot!("dot_inner_tree", tiled(&l.dot(&r)));
}

#[test]
fn transpose_and_reshape() {
    insta::assert_snapshot!("transpose", tiled(&x(&[4, 2], &[2, 2]).t()));
    insta::assert_snapshot!("reshape_across_chunks", tiled(&x(&[6, 4], &[4, 4]).reshape(&[4, 6])));
}

#[test]
fn slice_with_steps() {
    insta::assert_snapshot!("slice", tiled(&x(&[6, 4], &[4, 3]).slice(s![1..6;2, ..;-1])));
    insta::assert_snapshot!("slice_index", tiled(&x(&[6, 4], &[4, 3]).slice(s![5, 1..])));
}

#[test]
fn concatenate_reuses_chunks() {
    let t = mt::concatenate(&[&x(&[2, 4], &[2, 2]), &mt::ones(&[3, 4]).rechunk(&[3, 4])], 0);
    insta::assert_snapshot!("concatenate", tiled(&t));
}

#[test]
fn rechunk_assembles_pieces() {
    insta::assert_snapshot!("rechunk", tiled(&(x(&[5], &[2]) + 1.0).rechunk(3)));
}

#[test]
fn filter_pauses_tiling() {
    let a = x(&[6], &[3]);
    let f = a.filter(&a.gt(0.5));
    insta::assert_snapshot!("filter", tiled(&f));
    insta::assert_snapshot!("filter_then_reshape_pauses", tiled(&f.reshape(&[2, 1])));
}

#[test]
fn reduction_folds_its_map_chain_at_tiling() {
    let a = x(&[4, 4], &[2, 4]);
    // the maps get no chunks: the partials evaluate them over `a`'s chunks
    insta::assert_snapshot!("reduction_folds_maps", tiled(&((&a + 1.0) * 2.0).sum()));
    // a map read twice (by the reduction and by the other map) is tiled
    let b = &a + 1.0;
    insta::assert_snapshot!("reduction_no_fold_shared", tiled(&(&b * &b).sum()));
    // and so is one with two inputs (the chunk pass fuses those later)
    insta::assert_snapshot!("reduction_no_fold_binary", tiled(&(&a * &a.exp()).sum()));
}

#[test]
fn fusion_of_chain_and_reduction() {
    let a = x(&[4, 4], &[2, 4]);
    insta::assert_snapshot!("fusion_reduction", fused(&((&a + 1.0) * 2.0).sum()));
    insta::assert_snapshot!("fusion_chain", fused(&(((&a + 1.0) * 2.0) - &a).exp()));
}

#[test]
fn fusion_keeps_shared_producers() {
    // `b` feeds two consumers, so it is computed once and not inlined
    let a = x(&[4], &[4]);
    let b = &a + 1.0;
    let t = &(&b * 2.0) + &(&b * 3.0);
    insta::assert_snapshot!("fusion_shared", fused(&t));
}

#[test]
fn frame_select_projects_each_row_chunk() {
    let df =
        mars::dataframe::DataFrame::from_rows(vec![vec![1, 2, 3], vec![4, 5, 6], vec![7, 8, 9]]).unwrap().rechunk(2);
    insta::assert_snapshot!("frame_select", tiled(&df.select(&["2", "0"]).unwrap()));
    // head: the first chunk whole, the cut one sliced, the rest not in the graph
    let long = mars::dataframe::DataFrame::from_rows((0..7).map(|i| vec![i]).collect()).unwrap().rechunk(3);
    insta::assert_snapshot!("frame_head", tiled(&long.head(4)));
    // filter: a mask chunk (a Series expression) per row chunk; lengths unknown after
    let mask = long.col("0").unwrap().gt(2i64);
    insta::assert_snapshot!("frame_filter", tiled(&long.filter(&mask).unwrap()));
}

#[test]
fn frame_groupby_tree_shuffle_and_auto() {
    use mars::dataframe::GroupMethod;
    // 11 rows in 2-row chunks: 6 partials
    let df = mars::dataframe::DataFrame::from_rows((0..11).map(|i| vec![i % 3, i]).collect()).unwrap().rechunk(2);
    let by = |m: GroupMethod| df.groupby(&["0"]).unwrap().method(m).agg(&[("1", "sum"), ("1", "std")]).unwrap();
    // tree: combine rounds of fan-in 4, the last one finalizing into one chunk
    insta::assert_snapshot!("frame_groupby_tree", tiled(&by(GroupMethod::Tree)));
    // shuffle: the partials split by key ranges (pivots sampled from their
    // keys, equal keys together), a gather and a finalize per range: the
    // groups come out in key order
    insta::assert_snapshot!("frame_groupby_shuffle", tiled(&by(GroupMethod::Shuffle)));
    // auto: the partials run first, their sizes pick the method
    insta::assert_snapshot!("frame_groupby_auto", tiled(&by(GroupMethod::Auto)));
}

#[test]
fn frame_merge_broadcast_and_shuffle() {
    use mars::dataframe::{DataFrame, How};
    let left = DataFrame::from_rows((0..6).map(|i| vec![i % 3, i]).collect()).unwrap().rechunk(2);
    let right = DataFrame::from_rows((0..3).map(|i| vec![i, 10 * i]).collect()).unwrap().rechunk(2);
    // inner: the small right side is indexed once and probed by each left chunk
    insta::assert_snapshot!("frame_merge_broadcast", tiled(&left.merge(&right, &["0"], How::Inner).unwrap()));
    // outer: both sides hash-partitioned, each partition joined alone
    insta::assert_snapshot!("frame_merge_shuffle", tiled(&left.merge(&right, &["0"], How::Outer).unwrap()));
}

#[test]
fn frame_merge_learns_the_smaller_looking_side_first() {
    use mars::dataframe::{DataFrame, How};
    let frame = |rows: i64| DataFrame::from_rows((0..rows).map(|i| vec![i % 3, i]).collect()).unwrap().rechunk(2);
    let (left, right) = (frame(6), frame(3));
    let kept = |df: &DataFrame| df.filter(&df.col("1").unwrap().gt(0i64)).unwrap();
    // both sides' lengths unknown: only the right's filters run first (3
    // rows before filtering against the left's 6)
    let both = kept(&left).merge(&kept(&right), &["0"], How::Inner).unwrap();
    insta::assert_snapshot!("frame_merge_smaller_first", tiled(&both));
    // a side known to be small is broadcast at once: the left's filtered
    // chunks probe it as they are made, their lengths never waited for
    let small = kept(&left).merge(&right, &["0"], How::Inner).unwrap();
    insta::assert_snapshot!("frame_merge_small_known", tiled(&small));
}

#[test]
fn frame_sort_by_regular_sampling() {
    let df = mars::dataframe::DataFrame::from_rows((0..6).map(|i| vec![(i * 7) % 5, i]).collect()).unwrap().rechunk(2);
    // samples of each chunk, pivots, a range split of each chunk, a gather and sort per range
    insta::assert_snapshot!("frame_sort", tiled(&df.sort_values(&["0"], false).unwrap()));
}

#[test]
fn frame_sort_head_is_a_top_k() {
    let df = mars::dataframe::DataFrame::from_rows((0..6).map(|i| vec![(i * 7) % 5, i]).collect()).unwrap().rechunk(2);
    // each chunk's top 2, then the top 2 of those: no sampling, no shuffle
    insta::assert_snapshot!("frame_sort_head", tiled(&df.sort_values(&["0"], true).unwrap().head(2)));
}

#[test]
fn frame_drop_duplicates_tree() {
    let df = mars::dataframe::DataFrame::from_rows((0..10).map(|i| vec![i % 3]).collect()).unwrap().rechunk(2);
    // each chunk's distinct rows, then rounds of fan-in 4 down to one chunk
    insta::assert_snapshot!("frame_drop_duplicates", tiled(&df.drop_duplicates()));
}

/// `rows` written as a parquet file of row groups of `group` rows in a fresh
/// folder `name`, and the frame reading it; the folder goes when the test
/// says so (`remove_dir_all`), before its snapshot.
fn parquet_file(name: &str, rows: Vec<Vec<i64>>, group: usize) -> (std::path::PathBuf, mars::dataframe::DataFrame) {
    use mars::dataframe as md;
    let dir = std::env::temp_dir().join(format!("mars-snap-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("t.parquet");
    md::DataFrame::from_rows(rows).unwrap().rechunk(group).to_parquet(&path).unwrap();
    (dir, md::read_parquet(&path).unwrap())
}

#[test]
fn frame_read_parquet_pruned_and_shared() {
    // 10 rows of 3 columns in row groups of 4, 4 and 2 rows
    let (dir, df) = parquet_file("parquet", (0..10).map(|i| vec![i, 10 * i, 100 * i]).collect(), 4);
    // a chunk per row group; `df[df["0"] > 2]["1"]` reads column 1 filtered
    // on column 0 in the reader (row groups whose statistics rule the filter
    // out are skipped there), and never column 2
    let q = df.filter(&df.col("0").unwrap().gt(2i64)).unwrap().col("1").unwrap();
    let text = explain_tiled(&q, Some(1), false).expect("tiles");
    std::fs::remove_dir_all(&dir).unwrap();
    insta::assert_snapshot!("frame_read_parquet_pruned", renamed_keys(&text));
}

#[test]
fn frame_read_parquet_evened_out_for_two_threads() {
    // 8 rows of 3 columns in row groups of 6 and 2 rows
    let (dir, df) = parquet_file("even", (0..8).map(|i| vec![i, 10 * i, 100 * i]).collect(), 6);
    // one thread reads a row group a chunk; two would finish 3x apart, so
    // the rows are cut into even pieces instead (four of 2 rows: group 0 is
    // over the 200-byte budget, and two threads want an even count)
    let one = mars::explain_tiled_for(&df, Some(200), 1, false).expect("tiles");
    let two = mars::explain_tiled_for(&df, Some(200), 2, false).expect("tiles");
    std::fs::remove_dir_all(&dir).unwrap();
    insta::assert_snapshot!("frame_read_parquet_one_thread", renamed_keys(&one));
    insta::assert_snapshot!("frame_read_parquet_two_threads", renamed_keys(&two));
}

/// `text` with keys renamed k1, k2, … in order of appearance: a file's key
/// holds its path and mtime, so this keeps a snapshot stable and still shows
/// what is shared.
fn renamed_keys(text: &str) -> String {
    let mut names: Vec<String> = Vec::new();
    text.split("key=")
        .enumerate()
        .map(|(i, part)| {
            if i == 0 {
                return part.to_string();
            }
            let (key, rest) = part.split_at(part.find(|c: char| !c.is_ascii_hexdigit()).unwrap_or(part.len()));
            let n = names.iter().position(|k| k == key).unwrap_or_else(|| {
                names.push(key.to_string());
                names.len() - 1
            });
            format!("key=k{}{rest}", n + 1)
        })
        .collect::<String>()
}

#[test]
fn frame_pipeline_fuses_row_wise_ops_over_a_read() {
    use mars::dataframe as md;
    // 10 rows of 3 columns in row groups of 4, 4 and 2 rows
    let (dir, df) = parquet_file("pipeline", (0..10).map(|i| vec![i, 10 * i, i % 3]).collect(), 4);
    // a column computed, a filter on it (not one the reader can take), sums
    // per key: per chunk, one pipeline reads its row groups in batches and
    // runs the eval, the filter and the partial sums over each; only the
    // combine stays outside
    let df = df.with_column("s", &(&df.col("0").unwrap() + &df.col("1").unwrap())).unwrap();
    let df = df.filter(&df.col("s").unwrap().gt(20i64)).unwrap();
    let q = df.groupby(&["2"]).unwrap().method(md::GroupMethod::Tree).agg(&[("s", "sum")]).unwrap();
    let text = explain_tiled(&q, Some(1), true).expect("tiles");
    std::fs::remove_dir_all(&dir).unwrap();
    insta::assert_snapshot!("frame_pipeline", renamed_keys(&text));
}
