#[rustyray::remote]
async fn numbers(n: u64, out: rustyray::Yield<u64>) -> Result<(), rustyray::Error> {
    out.send(n).await
}

fn main() {}
