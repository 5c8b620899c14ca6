//! DNS message framing over streams (RFC 1035 4.2.2, RFC 7766): a 2-octet length, then the
//! message. Shared by the transfer client and the TCP query server.
//!
//! Owns only framing; it does not interpret messages.

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Reads one length-prefixed message. `Ok(None)` means the peer closed the stream cleanly
/// between messages.
pub async fn read_framed<S: AsyncRead + Unpin>(stream: &mut S) -> std::io::Result<Option<Vec<u8>>> {
    let mut length = [0u8; 2];
    match stream.read_exact(&mut length).await {
        Ok(_) => {}
        Err(error) if error.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(error) => return Err(error),
    }
    let mut message = vec![0u8; u16::from_be_bytes(length) as usize];
    stream.read_exact(&mut message).await?;
    Ok(Some(message))
}

/// Writes one message with its length prefix, in a single write so that small answers leave in
/// one segment.
pub async fn write_framed<S: AsyncWrite + Unpin>(
    stream: &mut S,
    message: &[u8],
) -> std::io::Result<()> {
    let length = u16::try_from(message.len()).map_err(|_| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "DNS message longer than 65535 octets",
        )
    })?;
    let mut framed = Vec::with_capacity(message.len() + 2);
    framed.extend_from_slice(&length.to_be_bytes());
    framed.extend_from_slice(message);
    stream.write_all(&framed).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn round_trips_and_sees_clean_close() {
        let (mut a, mut b) = tokio::io::duplex(1024);
        write_framed(&mut a, b"hello").await.expect("write");
        drop(a);
        assert_eq!(
            read_framed(&mut b).await.expect("read"),
            Some(b"hello".to_vec())
        );
        assert_eq!(read_framed(&mut b).await.expect("read"), None);
    }
}
