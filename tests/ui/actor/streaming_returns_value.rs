use rustyray::Yield;

#[rustyray::actor]
pub struct Source {
    n: u64,
}

#[rustyray::actor]
impl Source {
    pub fn new() -> Self {
        Source { n: 0 }
    }

    pub async fn numbers(&self, count: u64, out: Yield<u64>) -> u64 {
        let _ = out;
        self.n + count
    }
}

fn main() {}
