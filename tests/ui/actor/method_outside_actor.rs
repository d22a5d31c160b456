pub struct Server {
    n: i64,
}

impl Server {
    #[rustyray::method(concurrency_group = "io")]
    pub async fn work(&self) -> i64 {
        self.n
    }
}

fn main() {}
