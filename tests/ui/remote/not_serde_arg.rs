#[derive(Clone)]
struct Opaque {
    value: i64,
}

#[rustyray::remote]
fn read(o: Opaque) -> i64 {
    o.value
}

fn main() {}
