#[rustyray::actor]
pub struct Server {
    n: i64,
}

#[rustyray::actor(concurrency_groups(io = 2))]
impl Server {
    pub fn new() -> Self {
        Server { n: 0 }
    }

    #[rustyray::method(concurrency_group = "io")]
    pub fn work(&mut self) -> i64 {
        self.n
    }
}

fn main() {}
