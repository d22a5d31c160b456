//! A tree reduction over object refs: leaves compute partial sums, then pairs
//! of partial results are combined level by level until one remains. Each
//! combine runs as soon as its two inputs are ready.

use rustyray::prelude::*;

/// A leaf: the sum of squares over `lo..hi`.
#[rustyray::remote]
fn sum_of_squares(lo: u64, hi: u64) -> u128 {
    (lo..hi).map(|x| (x as u128) * (x as u128)).sum()
}

/// An inner node: combines two partial results.
#[rustyray::remote]
fn combine(a: u128, b: u128) -> u128 {
    a + b
}

#[tokio::main]
async fn main() -> rustyray::Result<()> {
    let rt = rustyray::init()?;
    let n: u64 = 10_000_000;
    let leaves = 256;
    let chunk = n / leaves;

    let mut level: Vec<ObjectRef<u128>> = (0..leaves)
        .map(|i| sum_of_squares::remote(i * chunk, if i == leaves - 1 { n } else { (i + 1) * chunk }))
        .collect();
    let mut depth = 0;
    while level.len() > 1 {
        level = level
            .chunks(2)
            .map(|pair| match pair {
                [a, b] => combine::remote(a, b),
                [a] => a.clone(),
                _ => unreachable!("chunks(2) yields one or two"),
            })
            .collect();
        depth += 1;
    }
    let total = level[0].get().await?;
    let expected = (n as u128 - 1) * n as u128 * (2 * n as u128 - 1) / 6;
    println!("sum of squares below {n}: {total} ({})", if total == expected { "correct" } else { "WRONG" });
    println!("{} tasks, tree depth {depth}", rt.stats().submitted);
    rt.shutdown().await;
    Ok(())
}
