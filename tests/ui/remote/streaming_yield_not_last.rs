#[rustyray::remote(streaming)]
async fn numbers(out: rustyray::Yield<u64>, n: u64) -> Result<(), rustyray::Error> {
    out.send(n).await
}

fn main() {}
