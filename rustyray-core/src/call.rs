//! Turning a call into a task: `f::remote(args..)` and `f::options()...remote(args..)`.
//!
//! Generated code implements [`RemoteFunction`] for a marker type per
//! `#[remote]` function; [`TaskBuilder`] collects options, wraps the arguments
//! and hands a [`TaskSpec`] to the current runner. Submitting never blocks and
//! never panics: without a runner the returned reference is already failed.

use std::future::Future;
use std::marker::PhantomData;
use std::panic::Location;
use std::sync::Arc;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::arg::TaskArg;
use crate::context;
use crate::durable::{EnqueueCall, JobArgs, JobQueue, RunAt};
use crate::error::Error;
use crate::ids::{FunctionId, TaskId};
use crate::object::{ObjectCell, ObjectRef};
use crate::options::TaskOptions;
use crate::spec::{Deps, TaskBody, TaskKind, TaskSpec};
use crate::value::{OutputOps, TaskOutput};

/// What the task machinery needs of every argument type: it moves between
/// threads and is shared. (What a parameter type must be beyond that,
/// `Clone` and serde, is checked once, at the parameter: see
/// [`TaskValue`](crate::value::TaskValue).)
pub trait ArgValue: Send + Sync + 'static {}
impl<T: Send + Sync + 'static> ArgValue for T {}

/// What a parameter type of a remote function or actor method must be.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be a parameter of a remote function or actor method",
    label = "arguments must be `Clone + Send + Sync + 'static` and serde `Serialize + Deserialize`",
    note = "derive them: `#[derive(Clone, serde::Serialize, serde::Deserialize)]`; arguments are stored, shared and, for calls by name, serialized"
)]
pub trait RemoteArg: Clone + Send + Sync + Serialize + DeserializeOwned + 'static {}
impl<T: Clone + Send + Sync + Serialize + DeserializeOwned + 'static> RemoteArg for T {}

/// What a result type of a remote function or actor method must be.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be the result of a remote function or actor method",
    label = "results must be `Send + Sync + 'static` and serde `Serialize`",
    note = "derive it: `#[derive(serde::Serialize)]` (and `Clone` to read it with `get`); results are stored, shared and, for calls by name, serialized"
)]
pub trait RemoteOutput: Send + Sync + Serialize + 'static {}
impl<T: Send + Sync + Serialize + 'static> RemoteOutput for T {}

/// Compile-time check used by generated code: `T` can be a result.
pub const fn assert_remote_output<T: TaskOutput<M>, M>() {}

/// A tuple of parameter types `(A, B, ..)` and its tuple of task arguments
/// `(TaskArg<A>, TaskArg<B>, ..)`.
pub trait ArgTuple: Sized + 'static {
    /// The arguments as a task holds them.
    type TaskArgs: Send + 'static;
    /// Wraps plain values (as decoded from bytes) as task arguments.
    fn into_task_args(self) -> Self::TaskArgs;
    /// The objects the arguments wait for.
    fn dependencies(args: &Self::TaskArgs) -> Deps;
}

/// A remote function: implemented by `#[remote]` for the marker type it generates.
pub trait RemoteFunction<Args: ArgTuple>: 'static {
    /// The type of the value the task produces.
    type Output: Send + Sync + 'static;
    /// The stable name it is registered under.
    const NAME: &'static str;
    /// Builds the body that runs the function on `args`.
    fn body(args: Args::TaskArgs) -> TaskBody;
    /// The arguments as text, `("a", 1, ObjectRef(7))`, for a call that opted
    /// in with `record_args(true)`.
    fn describe(args: &Args::TaskArgs) -> String;
    /// The operations on the result, for calls by name.
    const OUTPUT: OutputOps<Self::Output>;
    /// The arguments from the codec's encoding of the parameter tuple.
    fn decode_args(bytes: &[u8]) -> Result<Args::TaskArgs, Error>;
    /// The arguments from a JSON array, one element per parameter.
    fn json_args(name: &str, signature: &str, args: &serde_json::Value) -> Result<Args::TaskArgs, Error>;
}

/// Arguments as text, in parentheses.
pub fn describe_args(parts: &[String]) -> String {
    format!("({})", parts.join(", "))
}

/// Options for one call of a remote function, ended by `.remote(args..)`.
///
/// Returned by the generated `f::options()`.
#[must_use = "a task builder does nothing until `.remote(..)` is called"]
pub struct TaskBuilder<F, Args> {
    options: TaskOptions,
    /// The key a durable job is enqueued under (see [`TaskBuilder::idempotency_key`]).
    idempotency_key: Option<Box<str>>,
    _marker: PhantomData<fn() -> (F, Args)>,
}

impl<F, Args> std::fmt::Debug for TaskBuilder<F, Args> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TaskBuilder")
            .field("function", &std::any::type_name::<F>())
            .field("options", &self.options)
            .field("idempotency_key", &self.idempotency_key)
            .finish()
    }
}

impl<F, Args> Default for TaskBuilder<F, Args> {
    fn default() -> Self {
        Self::new()
    }
}

impl<F, Args> TaskBuilder<F, Args> {
    /// Default options.
    pub fn new() -> Self {
        TaskBuilder { options: TaskOptions::default(), idempotency_key: None, _marker: PhantomData }
    }

    /// The options collected so far.
    pub fn task_options(&self) -> &TaskOptions {
        &self.options
    }

    crate::__option_setters!(options);

    /// Lets the task start no earlier than `delay` after it is submitted
    /// (`.remote(..)`) or enqueued (`.enqueue(..)`). In process, the task
    /// is held in the runtime's timer queue, in state `Delayed`, and can be
    /// cancelled while it waits; then it waits for its arguments as usual.
    ///
    /// ```
    /// # use rustyray_core::{TaskBuilder, RunAt};
    /// # struct F;
    /// let builder = TaskBuilder::<F, ()>::new().run_after(std::time::Duration::from_secs(5));
    /// assert!(matches!(builder.task_options().run_at, Some(RunAt::After(_))));
    /// ```
    pub fn run_after(mut self, delay: std::time::Duration) -> Self {
        self.options.run_at = Some(RunAt::After(delay));
        self
    }

    /// Enqueues the durable job under `key`: an enqueue repeated with the
    /// same key (a retry after a lost answer, say) stores no second job and
    /// returns the one stored first, whatever became of it. The queue checks
    /// the key (1 to 255 bytes, no NUL). A key names one durable job, so an
    /// in-process call (`.remote(..)`) fails with
    /// [`Error::InvalidOption`], and `enqueue_many` writes none of its jobs
    /// and returns the queue's error for an invalid option.
    ///
    /// ```
    /// # use rustyray_core::TaskBuilder;
    /// # struct F;
    /// let builder = TaskBuilder::<F, ()>::new().idempotency_key("order-1042");
    /// assert!(format!("{builder:?}").contains("order-1042"));
    /// ```
    pub fn idempotency_key(mut self, key: impl Into<String>) -> Self {
        self.idempotency_key = Some(key.into().into_boxed_str());
        self
    }

    /// Refuses the idempotency key, if one was given, where no single
    /// durable job is made (`why` says where).
    fn refuse_key(&mut self, why: &str) {
        if self.idempotency_key.take().is_some() && self.options.invalid.is_none() {
            let reason = format!("an idempotency key names one durable job; {why}");
            self.options.invalid = Some(Box::new(Error::InvalidOption { option: "idempotency_key", reason }));
        }
    }

    /// Lets the task start no earlier than `at` (a past time means at once);
    /// otherwise as [`run_after`](Self::run_after).
    pub fn run_at(mut self, at: std::time::SystemTime) -> Self {
        self.options.run_at = Some(RunAt::At(at));
        self
    }
}

impl<F: RemoteFunction<Args>, Args: ArgTuple> TaskBuilder<F, Args> {
    /// Enqueues one durable job per argument tuple, all in one transaction,
    /// with these options.
    pub fn enqueue_many<Q: JobQueue>(
        mut self,
        queue: &Q,
        items: impl IntoIterator<Item = Args>,
    ) -> impl Future<Output = Result<Vec<Q::Job<F::Output>>, Q::Error>> + Send
    where
        Args: JobArgs<Q>,
    {
        self.refuse_key("`enqueue_many` stores many: enqueue each job with a key of its own");
        let refused = queue.check_options(F::NAME, &self.options).err();
        let calls: Vec<EnqueueCall> = items
            .into_iter()
            .map(|args| EnqueueCall {
                function: F::NAME,
                args: args.to_job_json(),
                options: self.options.clone(),
                idempotency_key: None,
            })
            .collect();
        let write = queue.enqueue_calls::<F::Output>(calls);
        async move {
            match refused {
                Some(error) => Err(error),
                None => write.await,
            }
        }
    }

    /// Enqueues an already-built argument tuple as a durable job.
    pub fn enqueue_tuple<Q: JobQueue>(
        self,
        queue: &Q,
        args: Args,
    ) -> impl Future<Output = Result<Q::Job<F::Output>, Q::Error>> + Send
    where
        Args: JobArgs<Q>,
    {
        let call = EnqueueCall {
            function: F::NAME,
            args: args.to_job_json(),
            options: self.options,
            idempotency_key: self.idempotency_key.map(String::from),
        };
        queue.enqueue_call::<F::Output>(call)
    }
}

impl<F: RemoteFunction<Args>, Args: ArgTuple> TaskBuilder<F, Args> {
    /// Submits the call with arguments already wrapped.
    #[track_caller]
    pub fn call(mut self, args: Args::TaskArgs) -> ObjectRef<F::Output> {
        self.refuse_key("an in-process call (`remote`) is not one: use `enqueue`");
        let deps = Args::dependencies(&args);
        let described = self.options.record_args.then(|| Arc::from(F::describe(&args)));
        let function = FunctionId::new(&F::NAME);
        submit(function, TaskKind::Normal, self.options, deps, F::body(args), Location::caller(), described)
    }
}

/// Hands a task to the current runner and returns the reference to its output.
pub fn submit<T>(
    function: FunctionId,
    kind: TaskKind,
    options: TaskOptions,
    deps: Deps,
    body: TaskBody,
    caller: &'static Location<'static>,
    args: Option<Arc<str>>,
) -> ObjectRef<T> {
    let id = TaskId::next();
    let current = context::with_current(|ctx| ctx.map(|ctx| (ctx.runner.clone(), ctx.task)));
    let (runner, parent) = match current {
        Some((runner, parent)) => (runner, parent),
        None => match context::default_runner() {
            Some(runner) => (runner, None),
            None => return ObjectRef::from_cell(ObjectCell::with_error(id.output(), Some(id), Error::NoRuntime)),
        },
    };
    let output = ObjectCell::pending(id, function, options.name.clone(), runner.clone());
    let trace_parent = crate::spec::current_trace_parent();
    let output_ref = output.clone();
    runner.submit(TaskSpec { id, function, kind, options, deps, body, output, parent, caller, args, trace_parent });
    ObjectRef::from_cell(output_ref)
}

macro_rules! arities {
    ($( ($($T:ident $v:ident),*) )*) => {$(
        impl<$($T: ArgValue),*> ArgTuple for ($($T,)*) {
            type TaskArgs = ($(TaskArg<$T>,)*);

            #[allow(clippy::unused_unit)]
            fn into_task_args(self) -> Self::TaskArgs {
                let ($($v,)*) = self;
                ($(TaskArg::Value($v),)*)
            }

            #[allow(unused_mut)]
            fn dependencies(args: &Self::TaskArgs) -> Deps {
                let ($($v,)*) = args;
                let mut deps = Deps::new();
                $( if let Some(cell) = $v.dependency() { deps.push(cell.clone()); } )*
                deps
            }
        }

        impl<F, $($T: ArgValue),*> TaskBuilder<F, ($($T,)*)>
        where
            F: RemoteFunction<($($T,)*)>,
        {
            /// Submits the call. Each argument may be a value, an `ObjectRef`
            /// or an `&ObjectRef` of the parameter's type; references make the
            /// task wait for their objects.
            #[track_caller]
            #[allow(clippy::too_many_arguments)]
            pub fn remote(self, $($v: impl Into<TaskArg<$T>>),*) -> ObjectRef<F::Output> {
                self.call(($($v.into(),)*))
            }

            /// Enqueues the call as a durable job in `queue` (the durable
            /// queue's `Queue`); the job is committed when the future resolves.
            #[allow(clippy::too_many_arguments)]
            pub fn enqueue<Q: JobQueue>(
                self,
                queue: &Q,
                $($v: $T),*
            ) -> impl Future<Output = Result<Q::Job<F::Output>, Q::Error>> + Send
            where
                ($($T,)*): JobArgs<Q>,
            {
                self.enqueue_tuple(queue, ($($v,)*))
            }
        }
    )*};
}

arities! {
    ()
    (A a)
    (A a, B b)
    (A a, B b, C c)
    (A a, B b, C c, D d)
    (A a, B b, C c, D d, E e)
    (A a, B b, C c, D d, E e, G g)
    (A a, B b, C c, D d, E e, G g, H h)
    (A a, B b, C c, D d, E e, G g, H h, I i)
    (A a, B b, C c, D d, E e, G g, H h, I i, J j)
    (A a, B b, C c, D d, E e, G g, H h, I i, J j, K k)
    (A a, B b, C c, D d, E e, G g, H h, I i, J j, K k, L l)
    (A a, B b, C c, D d, E e, G g, H h, I i, J j, K k, L l, M m)
}
