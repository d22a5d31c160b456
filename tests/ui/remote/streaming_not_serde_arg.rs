//! A streaming function's parameter that is not serde: one error, at its type.

#[derive(Clone)]
struct Opaque;

#[rustyray::remote(streaming)]
fn numbers(_o: Opaque, out: rustyray::Yield<u64>) -> Result<(), rustyray::Error> {
    out.send_blocking(1)
}

fn main() {}
