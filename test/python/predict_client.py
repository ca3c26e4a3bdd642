#!/usr/bin/python3
"""Cross-language check: a Python gRPC client for tensorgate.v1.ModelService.

Message classes come from `protoc --python_out` (run by test/cross-language.test.ts into --stubs); the
service stubs are written here by hand with channel.unary_unary, so only Debian's python3-grpcio,
python3-protobuf and protobuf-compiler are needed (no grpc_tools).

Prints one JSON object on stdout:
  {"sentiment": {"output_text", "confidence", "labels"},
   "mlp": {"model", "version", "name", "dtype", "shape", "values"},
   "models": [{"name", "versions": [{"version", "state"}]}]}
Exits 2 on a gRPC error and 3 when a Python dependency is missing, with the reason on stderr.
"""
import argparse
import json
import struct
import sys


def die(code, message):
    sys.stderr.write(f"predict_client.py: {message}\n")
    sys.exit(code)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--address", required=True, help="HOST:PORT of the tensorgate server")
    parser.add_argument("--stubs", required=True, help="folder holding tensorgate/v1/model_service_pb2.py")
    parser.add_argument("--timeout", type=float, default=30.0, help="deadline per call, seconds")
    args = parser.parse_args()

    try:
        import grpc
    except ImportError as err:
        die(3, f"cannot import grpc ({err}); install the Debian package python3-grpcio")
    sys.path.insert(0, args.stubs)
    try:
        from tensorgate.v1 import model_service_pb2 as pb
    except ImportError as err:
        die(3, f"cannot import the generated tensorgate/v1/model_service_pb2 from {args.stubs} ({err}); "
               "it needs python3-protobuf, and protoc (protobuf-compiler) must have generated it")

    service = "/tensorgate.v1.ModelService/"
    with grpc.insecure_channel(args.address) as channel:
        def method(name, request_type, response_type):
            return channel.unary_unary(
                service + name,
                request_serializer=request_type.SerializeToString,
                response_deserializer=response_type.FromString,
            )

        predict = method("Predict", pb.PredictRequest, pb.PredictResponse)
        list_models = method("ListModels", pb.ListModelsRequest, pb.ListModelsResponse)

        try:
            grpc.channel_ready_future(channel).result(timeout=args.timeout)

            text = predict(pb.PredictRequest(model="sentiment", input_text="I love this"), timeout=args.timeout)

            # FP32 [1, 64] of zeros: little-endian, row-major element bytes.
            zeros = struct.pack("<64f", *([0.0] * 64))
            tensor = pb.Tensor(name="input", dtype=pb.FP32, shape=[1, 64], data=zeros)
            mlp = predict(pb.PredictRequest(model="mlp", inputs=[tensor]), timeout=args.timeout)

            models = list_models(pb.ListModelsRequest(), timeout=args.timeout)
        except grpc.FutureTimeoutError:
            die(2, f"could not connect to {args.address} within {args.timeout} s")
        except grpc.RpcError as err:
            die(2, f"{err.code().name}: {err.details()}")

    if len(mlp.outputs) != 1:
        die(1, f"mlp returned {len(mlp.outputs)} outputs, expected 1")
    out = mlp.outputs[0]
    count = 1
    for d in out.shape:
        count *= d
    if out.dtype != pb.FP32 or len(out.data) != 4 * count:
        die(1, f"mlp output {out.name}: dtype {pb.DataType.Name(out.dtype)}, {len(out.data)} bytes for shape {list(out.shape)}")
    values = list(struct.unpack(f"<{count}f", out.data))

    json.dump(
        {
            "sentiment": {
                "output_text": text.output_text,
                "confidence": text.confidence,
                "labels": [{"label": l.label, "score": l.score} for l in text.labels],
            },
            "mlp": {
                "model": mlp.model,
                "version": mlp.version,
                "name": out.name,
                "dtype": pb.DataType.Name(out.dtype),
                "shape": list(out.shape),
                "values": values,
            },
            "models": [
                {
                    "name": m.name,
                    "versions": [{"version": v.version, "state": pb.ModelState.Name(v.state)} for v in m.versions],
                }
                for m in models.models
            ],
        },
        sys.stdout,
    )
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
