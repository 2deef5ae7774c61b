# Functions of scripts/install-pi (sourced; tests call them on their own).

# write_car_config EXAMPLE OUT DEVICE MODEL RUNS_ROOT: the car's config from the example,
# with the camera stream, device, model, runs folder and real motors set; written whole
# or not at all (a failed edit never leaves an empty or partial config behind)
write_car_config() {
  local example=$1 out=$2 device=$3 model=$4 runs=$5
  sed -e 's|^  url: demo .*|  url: http://127.0.0.1:8080/stream|' \
    -e "s|^  device: CPU .*|  device: $device|" \
    -e "s|^  model: '' .*|  model: $model|" \
    -e "s|^  root: runs .*|  root: $runs|" \
    -e 's|^  motors: auto .*|  motors: gpio                # the car: no GPIO is an error|' \
    "$example" > "$out.new"
  local want
  for want in "^  url: http://127.0.0.1:8080/stream" "^  device: $device" "^  model: $model" \
              "^  root: $runs" "^  motors: gpio"; do
    grep -q "$want" "$out.new" ||
      { echo "$example: no line for ${want#^  } (the example config changed?)" >&2
        rm -f "$out.new"; return 1; }
  done
  mv "$out.new" "$out"
}

# csi_camera_dropin SHIM: a drop-in for crack-car-camera.service that serves a CSI camera
# (a libcamera device on Bookworm and later) through libcamera's V4L2 shim, as libcamerify
# does: ustreamer sees a V4L2 camera giving raw frames and JPEG-encodes them itself
csi_camera_dropin() {
  local shim=$1
  cat <<EOT
# written by scripts/install-pi --csi: a CSI camera through libcamera's V4L2 shim
[Unit]
Description=MJPG camera stream for crack-car (CSI camera through libcamera, port 8080)

[Service]
Environment=LD_PRELOAD=$shim
ExecStart=
ExecStart=/usr/bin/ustreamer --device=/dev/video0 --resolution=640x480 --format=YUYV --encoder=CPU --desired-fps=15 --host=127.0.0.1 --port=8080 --persistent
EOT
}
