#[rustyray::remote(num_returns = 3)]
fn pair(x: i64) -> (i64, i64) {
    (x, x)
}

fn main() {}
