"""The kernel tree every step cites."""

KERNEL_REPO = "kvm-x86/linux"
KERNEL_COMMIT = "1a27afa0511e404fd87c1a5e643945940ef72f90"


def source_url(path: str, function: str = "") -> str:
    """A link to the file at the pinned commit, with the function named."""
    url = f"https://github.com/{KERNEL_REPO}/blob/{KERNEL_COMMIT}/{path}"
    return f"{url} ({function})" if function else url
