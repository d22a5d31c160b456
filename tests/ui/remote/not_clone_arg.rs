//! A parameter type that is serde but not `Clone`: one error, at its type.

#[derive(serde::Serialize, serde::Deserialize)]
struct Config {
    value: i64,
}

#[rustyray::remote]
fn read(c: Config) -> i64 {
    c.value
}

fn main() {}
