pub struct Counter {
    n: i64,
}

#[rustyray::actor]
impl Counter {
    pub fn new() -> Self {
        Counter { n: 0 }
    }

    pub fn get(&self) -> i64 {
        self.n
    }
}

fn main() {}
