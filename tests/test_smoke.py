from tests.helpers import RawClient


async def test_room_message_reaches_other_member_with_server_stamped_sender(ws_url: str) -> None:
    async with await RawClient.connect(ws_url, "a", rooms=("r",)) as a, \
            await RawClient.connect(ws_url, "b", rooms=("r",)) as b:
        await b.send({"TYPE": "DATA/TEXT", "TO_ROOM": "r", "DATA": "hi", "SENT_BY": "spoof"})
        got = await a.expect("DATA/TEXT")
        assert got["DATA"] == "hi"
        assert got["SENT_BY"] == "b"
