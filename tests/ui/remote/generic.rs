#[rustyray::remote]
fn largest<T: PartialOrd + Clone>(a: T, b: T) -> T {
    if a > b { a } else { b }
}

fn main() {}
