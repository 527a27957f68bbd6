# mvc/objects/_patch.c: optional, compiled when mvc is installed with a C compiler at hand
Buffer = bytes | bytearray | memoryview

def sparse(
    window: Buffer, raw: Buffer, m: int, w: int, first: int, j: int, place: int, k: int, /
) -> tuple[int, int]: ...
def dense(window: Buffer, planes: Buffer, count: int, w: int, first: int, /) -> None: ...
