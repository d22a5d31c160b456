#[rustyray::actor]
pub struct Counter {
    n: i64,
}

#[rustyray::actor]
impl Counter {
    pub fn new() -> Self {
        Counter { n: 0 }
    }

    pub fn kill(&mut self) {
        self.n = -1;
    }
}

fn main() {}
