#[rustyray::actor]
pub struct Server {
    n: i64,
}

#[rustyray::actor(max_concurrency = 4)]
impl Server {
    pub fn new() -> Self {
        Server { n: 0 }
    }
}

fn main() {}
