#[rustyray::remote(num_returns = 1)]
fn single(x: i64) -> (i64,) {
    (x,)
}

fn main() {}
