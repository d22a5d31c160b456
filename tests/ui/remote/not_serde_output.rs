#[derive(Clone)]
struct Opaque {
    value: i64,
}

#[rustyray::remote]
fn make(value: i64) -> Opaque {
    Opaque { value }
}

fn main() {}
