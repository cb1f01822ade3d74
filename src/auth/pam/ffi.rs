//! The few libpam calls the `pam` module needs, with libpam loaded at run
//! time.
//!
//! Why loaded at run time and not linked: a machine without PAM's
//! development package has `libpam.so.0` but no `libpam.so` to link
//! against, and the Rust PAM crates either link `-lpam` or generate
//! bindings with bindgen (libclang and PAM's headers at build time). Loading
//! the library here keeps `cargo build` working on any machine, and turns a
//! missing libpam into a clear configuration error instead of a binary that
//! will not start. The surface is five functions and three structs.
//!
//! Symbols are looked up in the process's global scope after the library is
//! loaded with `RTLD_GLOBAL`, so a preloaded wrapper (pam_wrapper, used by
//! the tests to run a private PAM stack) takes precedence, exactly as it
//! would for a program linked against libpam.
//!
//! All `unsafe` of the PAM module is in this file.

use std::ffi::{c_char, c_int, c_void, CStr, CString};
use std::sync::OnceLock;

/// Return codes and constants. Linux-PAM and OpenPAM (macOS, the BSDs)
/// number them differently; the message styles and items used here agree.
#[cfg(target_os = "linux")]
mod code {
    pub const SUCCESS: i32 = 0;
    pub const USER_UNKNOWN: i32 = 10;
    pub const AUTHINFO_UNAVAIL: i32 = 9;
    pub const CONV_ERR: i32 = 19;
    pub const FAIL_DELAY_ITEM: Option<i32> = Some(10);
}
#[cfg(not(target_os = "linux"))]
mod code {
    pub const SUCCESS: i32 = 0;
    pub const USER_UNKNOWN: i32 = 13;
    pub const AUTHINFO_UNAVAIL: i32 = 12;
    pub const CONV_ERR: i32 = 6;
    pub const FAIL_DELAY_ITEM: Option<i32> = None;
}

const PROMPT_ECHO_OFF: c_int = 1;
const PROMPT_ECHO_ON: c_int = 2;
const ITEM_TTY: c_int = 3;
const ITEM_RHOST: c_int = 4;
const ITEM_RUSER: c_int = 8;

#[repr(C)]
struct Message {
    style: c_int,
    msg: *const c_char,
}

#[repr(C)]
struct Response {
    resp: *mut c_char,
    retcode: c_int,
}

type ConvFn = extern "C" fn(c_int, *mut *const Message, *mut *mut Response, *mut c_void) -> c_int;

#[repr(C)]
struct Conv {
    conv: ConvFn,
    appdata: *mut c_void,
}

type StartFn = unsafe extern "C" fn(*const c_char, *const c_char, *const Conv, *mut *mut c_void) -> c_int;
type EndFn = unsafe extern "C" fn(*mut c_void, c_int) -> c_int;
type FlagsFn = unsafe extern "C" fn(*mut c_void, c_int) -> c_int;
type SetItemFn = unsafe extern "C" fn(*mut c_void, c_int, *const c_void) -> c_int;
type StrErrorFn = unsafe extern "C" fn(*mut c_void, c_int) -> *const c_char;

/// libpam's entry points, resolved once per process.
struct Lib {
    start: StartFn,
    end: EndFn,
    authenticate: FlagsFn,
    acct_mgmt: FlagsFn,
    set_item: SetItemFn,
    strerror: StrErrorFn,
}

/// Names under which the platforms ship libpam.
const LIBRARY_NAMES: &[&CStr] =
    &[c"libpam.so.0", c"libpam.so", c"libpam.2.dylib", c"libpam.dylib", c"libpam.so.6"];

fn lib() -> Result<&'static Lib, String> {
    static LIB: OnceLock<Result<Lib, String>> = OnceLock::new();
    LIB.get_or_init(load).as_ref().map_err(Clone::clone)
}

fn load() -> Result<Lib, String> {
    // SAFETY: dlopen with a valid C string; the handle is never closed, so
    // the symbols stay valid for the life of the process.
    let loaded = LIBRARY_NAMES
        .iter()
        .any(|name| unsafe { !libc::dlopen(name.as_ptr(), libc::RTLD_NOW | libc::RTLD_GLOBAL).is_null() });
    if !loaded {
        return Err("libpam is not installed (tried libpam.so.0, libpam.dylib and others)".into());
    }
    fn symbol(name: &CStr) -> Result<*mut c_void, String> {
        // SAFETY: dlsym on the global scope with a valid C string.
        let p = unsafe { libc::dlsym(libc::RTLD_DEFAULT, name.as_ptr()) };
        if p.is_null() {
            Err(format!("libpam has no symbol {}", name.to_string_lossy()))
        } else {
            Ok(p)
        }
    }
    // SAFETY: each symbol is libpam's function of the declared signature
    // (the PAM application API, identical in Linux-PAM and OpenPAM).
    unsafe {
        Ok(Lib {
            start: std::mem::transmute::<*mut c_void, StartFn>(symbol(c"pam_start")?),
            end: std::mem::transmute::<*mut c_void, EndFn>(symbol(c"pam_end")?),
            authenticate: std::mem::transmute::<*mut c_void, FlagsFn>(symbol(c"pam_authenticate")?),
            acct_mgmt: std::mem::transmute::<*mut c_void, FlagsFn>(symbol(c"pam_acct_mgmt")?),
            set_item: std::mem::transmute::<*mut c_void, SetItemFn>(symbol(c"pam_set_item")?),
            strerror: std::mem::transmute::<*mut c_void, StrErrorFn>(symbol(c"pam_strerror")?),
        })
    }
}

/// Checks that libpam can be loaded (for configuration checks).
pub fn available() -> Result<(), String> {
    lib().map(drop)
}

/// What PAM said about a login.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Password right and account usable.
    Accepted,
    /// PAM does not know the user.
    UnknownUser,
    /// Wrong password, or the stack refused (the text says why).
    Refused(String),
    /// The account is expired, locked or must change its password.
    AccountUnusable(String),
    /// PAM itself failed (unreadable service file, missing module …).
    Error(String),
}

/// The conversation's answers: the user name and the password.
struct Answers {
    user: CString,
    password: CString,
}

/// Answers PAM's prompts: the password when input is hidden, the user name
/// when it is echoed; informational messages get no answer. Responses are
/// allocated with malloc because PAM frees them.
extern "C" fn converse(
    count: c_int,
    messages: *mut *const Message,
    responses: *mut *mut Response,
    appdata: *mut c_void,
) -> c_int {
    let Ok(n) = usize::try_from(count) else { return code::CONV_ERR };
    if n == 0 || messages.is_null() || responses.is_null() || appdata.is_null() {
        return code::CONV_ERR;
    }
    // SAFETY: PAM passes `count` message pointers (Linux-PAM and OpenPAM
    // layout) and a writable slot for the response array; `appdata` is the
    // `Answers` that `check` keeps alive for the whole conversation.
    unsafe {
        let answers = &*(appdata as *const Answers);
        let out = libc::calloc(n, std::mem::size_of::<Response>()) as *mut Response;
        if out.is_null() {
            return code::CONV_ERR;
        }
        for i in 0..n {
            let message = *messages.add(i);
            if message.is_null() {
                continue;
            }
            let text = match (*message).style {
                PROMPT_ECHO_OFF => Some(&answers.password),
                PROMPT_ECHO_ON => Some(&answers.user),
                _ => None,
            };
            if let Some(text) = text {
                let copy = libc::strdup(text.as_ptr());
                if copy.is_null() {
                    free_responses(out, i);
                    return code::CONV_ERR;
                }
                (*out.add(i)).resp = copy;
            }
        }
        *responses = out;
    }
    code::SUCCESS
}

/// Frees the first `filled` responses (wiping them) and the array.
///
/// SAFETY: `out` was allocated by `converse` with at least `filled` entries.
unsafe fn free_responses(out: *mut Response, filled: usize) {
    for i in 0..filled {
        let r = (*out.add(i)).resp;
        if !r.is_null() {
            libc::memset(r as *mut c_void, 0, libc::strlen(r));
            libc::free(r as *mut c_void);
        }
    }
    libc::free(out as *mut c_void);
}

/// PAM's own failure delay (pam_unix waits ~2 s) would hold a blocking
/// thread; the server pads every failed login to the same duration itself.
extern "C" fn no_delay(_status: c_int, _usec: libc::c_uint, _appdata: *mut c_void) {}

/// Runs `pam_authenticate` then `pam_acct_mgmt` for `user` with `password`
/// against `service`. Blocking: call it off the async workers.
pub fn check(service: &str, user: &str, password: &str, rhost: &str) -> Verdict {
    let lib = match lib() {
        Ok(lib) => lib,
        Err(e) => return Verdict::Error(e),
    };
    let (Ok(c_service), Ok(c_user), Ok(c_rhost)) =
        (CString::new(service), CString::new(user), CString::new(rhost))
    else {
        return Verdict::Refused("a NUL byte in the service, user or address".into());
    };
    let Ok(c_password) = CString::new(password) else {
        return Verdict::Refused("a NUL byte in the password".into());
    };
    let answers = Answers { user: c_user.clone(), password: c_password };
    let conv = Conv { conv: converse, appdata: &answers as *const Answers as *mut c_void };
    let mut handle: *mut c_void = std::ptr::null_mut();
    // SAFETY: valid C strings and a conversation whose appdata (`answers`)
    // outlives the handle, which is ended below on every path.
    let verdict = unsafe {
        let rc = (lib.start)(c_service.as_ptr(), c_user.as_ptr(), &conv, &mut handle);
        if rc != code::SUCCESS || handle.is_null() {
            return Verdict::Error(format!("pam_start failed (code {rc})"));
        }
        (lib.set_item)(handle, ITEM_RHOST, c_rhost.as_ptr() as *const c_void);
        (lib.set_item)(handle, ITEM_RUSER, c_user.as_ptr() as *const c_void);
        (lib.set_item)(handle, ITEM_TTY, c"ftp".as_ptr() as *const c_void);
        if let Some(item) = code::FAIL_DELAY_ITEM {
            type DelayFn = extern "C" fn(c_int, libc::c_uint, *mut c_void);
            (lib.set_item)(handle, item, no_delay as DelayFn as *const c_void);
        }
        let describe = |rc: c_int| {
            let text = (lib.strerror)(handle, rc);
            if text.is_null() {
                format!("PAM code {rc}")
            } else {
                CStr::from_ptr(text).to_string_lossy().into_owned()
            }
        };
        let rc = (lib.authenticate)(handle, 0);
        let verdict = match rc {
            code::SUCCESS => {
                let rc = (lib.acct_mgmt)(handle, 0);
                match rc {
                    code::SUCCESS => Verdict::Accepted,
                    code::USER_UNKNOWN => Verdict::UnknownUser,
                    // Expired, locked, password change required, refused.
                    _ => Verdict::AccountUnusable(describe(rc)),
                }
            }
            code::USER_UNKNOWN => Verdict::UnknownUser,
            code::AUTHINFO_UNAVAIL => Verdict::Error(describe(rc)),
            _ => Verdict::Refused(describe(rc)),
        };
        (lib.end)(handle, rc);
        verdict
    };
    wipe(answers);
    verdict
}

/// Overwrites the password before its memory is freed.
fn wipe(answers: Answers) {
    let mut bytes = answers.password.into_bytes_with_nul();
    bytes.iter_mut().for_each(|b| *b = 0);
    // Keep the writes from being optimised away.
    std::hint::black_box(&bytes);
}
