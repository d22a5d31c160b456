#[rustyray::remote]
fn push(values: &mut Vec<i64>) {
    values.push(1);
}

fn main() {}
