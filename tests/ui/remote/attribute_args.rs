#[rustyray::remote(num_cpus = 2)]
fn work(x: i64) -> i64 {
    x
}

fn main() {}
