// Referenced by other.html without a nonce: must never run.
window.evilRan = true;
