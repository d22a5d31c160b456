//! The generated `remote(..)` keeps the function's parameter names, as
//! rustc's note on a wrong call shows.

#[rustyray::remote]
fn add(left: i64, right: i64) -> i64 {
    left + right
}

fn main() {
    let _ = add::remote(1);
}
