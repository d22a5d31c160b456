#[rustyray::remote]
fn double(x: i64) -> i64 {
    x * 2
}

fn main() {
    let _ = double::remote("two".to_string());
}
