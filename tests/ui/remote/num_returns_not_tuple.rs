#[rustyray::remote(num_returns = 2)]
fn pair(x: i64) -> i64 {
    x
}

fn main() {}
