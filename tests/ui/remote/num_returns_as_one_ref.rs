use rustyray::ObjectRef;

#[rustyray::remote(num_returns = 2)]
fn pair(x: i64) -> (i64, String) {
    (x, x.to_string())
}

fn main() {
    // Each element is its own ref: the tuple as one ref is a type error.
    let _both: ObjectRef<(i64, String)> = pair::remote(1);
}
