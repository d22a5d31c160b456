#[rustyray::remote(streaming, num_returns = 2)]
fn pair(x: i64) -> (i64, i64) {
    (x, x)
}

fn main() {}
