#[rustyray::remote(num_returns = "two")]
fn pair(x: i64) -> (i64, i64) {
    (x, x)
}

fn main() {}
