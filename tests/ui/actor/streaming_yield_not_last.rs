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

    pub fn numbers(&self, out: Yield<u64>, count: u64) {
        for i in 0..count {
            let _ = out.send_blocking(self.n + i);
        }
    }
}

fn main() {}
