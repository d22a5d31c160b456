#[rustyray::actor]
pub struct Server {
    n: i64,
}

#[rustyray::actor(concurrency_groups(io = 0))]
impl Server {
    pub fn new() -> Self {
        Server { n: 0 }
    }
}

fn main() {}
