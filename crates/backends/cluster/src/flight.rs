//! Chunk data over Arrow Flight: `DoGet` with the chunk key as ticket reads a
//! chunk from the worker holding it, `DoPut` with the key as descriptor
//! command stores one there. A chunk travels as the bytes of the one
//! [`codec`](mars_exec::codec) spilling uses (Arrow IPC for frames, `.npy`
//! for tensors), cut into messages of at most [`PIECE`] bytes; the first
//! message's `app_metadata` gives the total length. A receiver refuses a
//! length larger than its machine's memory, decodes each piece as it arrives
//! (a tensor's array is allocated once its header, checked against the
//! length, has come; each piece is copied into it and dropped), and checks
//! it got exactly that many bytes.

use crate::auth::AddToken;
use crate::tls::ClientTls;
use crate::wire;
use arrow_flight::flight_service_client::FlightServiceClient;
use arrow_flight::{FlightData, FlightDescriptor, Ticket};
use bytes::Bytes;
use futures::{Stream, StreamExt};
use mars_exec::{codec, ChunkData};
use mars_ir::Key;
use std::sync::Arc;
use std::time::Duration;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Endpoint};
use tonic::Status;

/// Body bytes per Flight message.
pub const PIECE: usize = 1 << 20;

/// The longest a chunk stream may stall (a peer that hangs, say stopped
/// with SIGSTOP, must not hang its readers).
pub const IDLE: Duration = Duration::from_secs(10);

async fn next_within<S>(stream: &mut S) -> Result<Option<FlightData>, Status>
where
    S: Stream<Item = Result<FlightData, Status>> + Unpin,
{
    match tokio::time::timeout(IDLE, stream.next()).await {
        Err(_) => Err(Status::deadline_exceeded(format!("a chunk stream stalled for {IDLE:?}"))),
        Ok(None) => Ok(None),
        Ok(Some(m)) => m.map(Some),
    }
}

pub type FlightClient = FlightServiceClient<InterceptedService<Channel, AddToken>>;

/// A channel to `addr` (`http://host:port`, `https://host:port` or
/// `host:port`), connected on first use; `https` trusts what `tls` says.
pub fn channel(addr: &str, tls: &ClientTls) -> Result<Channel, Status> {
    let url = if addr.starts_with("http://") || addr.starts_with("https://") {
        addr.to_string()
    } else {
        format!("http://{addr}")
    };
    let mut endpoint = Endpoint::from_shared(url.clone())
        .map_err(|e| Status::invalid_argument(format!("bad address {addr:?}: {e}")))?;
    if url.starts_with("https://") {
        endpoint = endpoint
            .tls_config(tls.config())
            .map_err(|e| Status::invalid_argument(format!("TLS for {addr:?}: {e}")))?;
    }
    Ok(endpoint
        .connect_timeout(Duration::from_secs(3))
        .tcp_nodelay(true)
        .http2_keep_alive_interval(Duration::from_secs(10))
        .keep_alive_timeout(Duration::from_secs(10))
        .initial_stream_window_size(Some(8 << 20))
        .initial_connection_window_size(Some(32 << 20))
        // big frames: a 1 MiB piece in a few frames, not 64
        .max_frame_size(Some(1 << 20))
        .connect_lazy())
}

pub fn client(addr: &str, token: &AddToken, tls: &ClientTls) -> Result<FlightClient, Status> {
    Ok(FlightServiceClient::with_interceptor(channel(addr, tls)?, token.clone()))
}

/// A tensor's data, borrowed from the held value (sent without a copy).
struct TensorBody(Arc<ChunkData>);

impl AsRef<[u8]> for TensorBody {
    fn as_ref(&self) -> &[u8] {
        codec::encode_split(&self.0).map_or(&[], |(_, body)| body)
    }
}

/// A chunk's value as Flight messages (the first with `descriptor`, if any).
/// A tensor's data goes out from the array itself, with no copy.
pub fn encode(data: &Arc<ChunkData>, descriptor: Option<FlightDescriptor>) -> Result<Vec<FlightData>, Status> {
    let mut pieces: Vec<Bytes> = Vec::new();
    let mut cut = |bytes: Bytes| {
        let mut at = 0;
        while at < bytes.len() {
            let end = (at + PIECE).min(bytes.len());
            pieces.push(bytes.slice(at..end));
            at = end;
        }
    };
    match codec::encode_split(data) {
        Some((prefix, _)) => {
            cut(Bytes::from(prefix));
            cut(Bytes::from_owner(TensorBody(data.clone())));
        }
        None => cut(Bytes::from(codec::encode(data).map_err(|e| Status::internal(e.to_string()))?)),
    }
    let total: usize = pieces.iter().map(Bytes::len).sum();
    let mut out: Vec<FlightData> =
        pieces.into_iter().map(|b| FlightData { data_body: b, ..Default::default() }).collect();
    if out.is_empty() {
        out.push(FlightData::default());
    }
    out[0].app_metadata = Bytes::copy_from_slice(&(total as u64).to_le_bytes());
    out[0].flight_descriptor = descriptor;
    Ok(out)
}

/// The most bytes one chunk may announce: this machine's memory.
fn chunk_limit() -> usize {
    mars_exec::store::physical_memory().unwrap_or(usize::MAX)
}

/// The chunk [`encode`] sent, and the first message's descriptor. Each
/// piece is decoded as it arrives (a tensor's data copied once, straight
/// into its array) and then dropped.
pub async fn decode<S>(mut stream: S) -> Result<(Option<FlightDescriptor>, ChunkData), Status>
where
    S: Stream<Item = Result<FlightData, Status>> + Unpin,
{
    let first = next_within(&mut stream).await?.ok_or_else(|| Status::invalid_argument("an empty chunk stream"))?;
    let total: [u8; 8] = first.app_metadata.as_ref().try_into().map_err(|_| {
        Status::invalid_argument("the first message of a chunk must give its length (8 bytes of app_metadata)")
    })?;
    let total = usize::try_from(u64::from_le_bytes(total)).unwrap_or(usize::MAX);
    if total > chunk_limit() {
        return Err(Status::resource_exhausted(format!(
            "a chunk of {total} bytes is more than this machine's memory ({} bytes)",
            chunk_limit()
        )));
    }
    let descriptor = first.flight_descriptor;
    let mut reader = codec::ChunkReader::new(total);
    let malformed = |e: String| Status::invalid_argument(format!("malformed chunk: {e}"));
    reader.push(&first.data_body).map_err(malformed)?;
    while let Some(m) = next_within(&mut stream).await? {
        reader.push(&m.data_body).map_err(malformed)?;
    }
    Ok((descriptor, reader.finish().map_err(malformed)?))
}

/// Read chunk `key` from the worker `client` talks to.
pub async fn get(client: &mut FlightClient, key: &Key) -> Result<ChunkData, Status> {
    let ticket = Ticket { ticket: Bytes::from(wire::key_bytes(key)) };
    let stream = tokio::time::timeout(IDLE, client.do_get(ticket))
        .await
        .map_err(|_| Status::deadline_exceeded(format!("no answer within {IDLE:?}")))??
        .into_inner();
    Ok(decode(stream).await?.1)
}

/// Store `data` as chunk `key` on the worker `client` talks to.
pub async fn put(client: &mut FlightClient, key: &Key, data: &Arc<ChunkData>) -> Result<(), Status> {
    let descriptor = FlightDescriptor::new_cmd(wire::key_bytes(key));
    let messages = encode(data, Some(descriptor))?;
    let mut replies = client.do_put(futures::stream::iter(messages)).await?.into_inner();
    while let Some(r) = replies.next().await {
        r?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use mars_ir::TensorData;

    fn tensor(n: usize) -> ChunkData {
        ChunkData::Tensor(TensorData::F64(ndarray::ArrayD::from_shape_fn(ndarray::IxDyn(&[n]), |i| i[0] as f64)))
    }

    fn roundtrip(messages: Vec<FlightData>) -> Result<ChunkData, Status> {
        let rt = tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap();
        rt.block_on(decode(futures::stream::iter(messages.into_iter().map(Ok)))).map(|(_, d)| d)
    }

    #[test]
    fn chunks_cross_in_pieces_and_truncation_is_an_error() {
        let data = Arc::new(tensor(300_000)); // 2.4 MB: a header, then three pieces of data
        let messages = encode(&data, None).unwrap();
        assert_eq!(messages.len(), 4);
        match roundtrip(messages.clone()).unwrap() {
            ChunkData::Tensor(t) => assert_eq!(
                t,
                match &*data {
                    ChunkData::Tensor(t) => t.clone(),
                    _ => unreachable!(),
                }
            ),
            other => panic!("{other:?}"),
        }
        let short = roundtrip(messages[..3].to_vec()).unwrap_err();
        assert!(short.message().contains("bytes announced"), "{short}");
        let mut long = messages.clone();
        long.push(messages[1].clone());
        assert!(roundtrip(long).unwrap_err().message().contains("more than"));
        let mut no_len = messages.clone();
        no_len[0].app_metadata = Bytes::new();
        assert!(roundtrip(no_len).unwrap_err().message().contains("length"));
        let mut garbage = encode(&data, None).unwrap();
        garbage[0].data_body = Bytes::from(vec![0u8; garbage[0].data_body.len()]);
        assert!(roundtrip(garbage).unwrap_err().message().contains("malformed"));
    }
}
