use nix::unistd::{geteuid, getuid, setgid, setgroups, setuid, User};

use crate::CaptureError;

/// Switches the process from root to `user` (supplementary groups, group,
/// then user), once the capture handle is open and root is no longer needed.
///
/// Does nothing when the process is not root. Fails when the user does not
/// exist, a call fails, or the process can still act as root afterwards.
pub fn drop_privileges(user: &str) -> Result<(), CaptureError> {
    if !geteuid().is_root() && !getuid().is_root() {
        return Ok(());
    }
    let fail = |detail: String| CaptureError::Privileges {
        user: user.to_string(),
        detail,
    };
    let entry = User::from_name(user)
        .map_err(|e| fail(format!("looking up the user failed: {e}")))?
        .ok_or_else(|| fail("no such user".into()))?;
    // Order matters: groups and gid can only be changed while still root.
    setgroups(&[entry.gid]).map_err(|e| fail(format!("setgroups: {e}")))?;
    setgid(entry.gid).map_err(|e| fail(format!("setgid: {e}")))?;
    setuid(entry.uid).map_err(|e| fail(format!("setuid: {e}")))?;
    if geteuid().is_root() || getuid().is_root() {
        return Err(fail("the process is still root afterwards".into()));
    }
    Ok(())
}
