"""Vietnamese word lists for synthetic text: names, places, form vocabulary.

Written out here (not fetched) so the recipe reproduces offline. Place names
cover the 63 provinces before the 2025 merger and the 34 after it, the common
district/town names and the ward/commune name stock; exact administrative
completeness matters less than the letter combinations they contain.
"""

SURNAMES = (
    "Nguyễn Trần Lê Phạm Hoàng Huỳnh Phan Vũ Võ Đặng Bùi Đỗ Hồ Ngô Dương Lý Đào Đoàn "
    "Vương Trịnh Trương Lâm Phùng Mai Tô Hà Tạ Lưu Quách Lương Cao Thái Châu Chu Kiều "
    "Âu Đàm Đinh Giang Hứa Khổng Khúc La Lạc Lò Mạc Mạnh Nghiêm Nông Ông Quan Sầm Tăng "
    "Thân Thạch Tiêu Tống Triệu Từ Văn Vi Viên Yên Lã Lục Đồng Bế Hoàng Phó Diệp Ứng Ưng "
    "Ninh Ngụy Khương Khuất Cù Cấn Cồ Hàn Doãn Nhữ Tôn Mẫn Kha Quản Phí Trang Tào Thiều"
).split()

MIDDLE = (
    "Văn Thị Hữu Đức Minh Ngọc Thanh Quang Xuân Thu Hồng Kim Bảo Gia Công Đình Trọng "
    "Quốc Anh Mạnh Thùy Phương Diệu Khánh Huyền Mỹ Tuấn Hoài Nhật Thế Duy Việt Thảo "
    "Tường Tiến Hải Như Cẩm Bích Phúc Thúy Ánh Lệ Quỳnh Ý Uyên Trúc Tâm Hương Thiện Ngân"
).split()

GIVEN = (
    "An Anh Ánh Bảo Bích Bình Cảnh Châu Chi Chiến Cường Dũng Dung Duy Dương Đạt Điệp Định "
    "Đông Đức Giang Hà Hải Hạnh Hào Hậu Hiền Hiếu Hiệp Hòa Hoa Hoài Hoàn Hoàng Hồng Huệ Hùng "
    "Hưng Hương Hường Huy Huyền Khải Khánh Khang Khoa Khôi Kiên Kiệt Lan Lâm Liên Liễu Linh "
    "Loan Lộc Long Lợi Luân Lực Ly Mai Mạnh Minh My Mỹ Nam Nga Ngân Nghĩa Ngọc Nguyên Nhàn "
    "Nhân Nhật Nhi Nhung Như Oanh Phát Phong Phú Phúc Phụng Phương Phượng Quân Quang Quế "
    "Quốc Quý Quyên Quyết Quỳnh Sang Sơn Sương Tài Tâm Tân Thạch Thái Thắm Thắng Thanh "
    "Thành Thảo Thắng Thi Thiện Thịnh Thoa Thông Thu Thuận Thư Thương Thủy Thúy Thùy Thy "
    "Tiên Tiến Tín Toàn Trang Trâm Trí Triều Trinh Trọng Trung Trúc Tú Tuấn Tùng Tuyết "
    "Tường Uyên Vân Văn Việt Vinh Vĩnh Vũ Vy Xuân Yến Ẩn Ẩm Ỷ Ửng Ưng Ỳ Ễnh Hỷ Kỳ Mỹ "
    "Lưỡng Nhưỡng Trưởng Hưởng Dưỡng Tưởng Thưởng Sửu Ngữ Hữu Cửu Giỏi Khải Hiểu Thủy "
    "Khuê Quyền Nguyệt Tuyền Hoạch Uẩn Quảng Đẩu Kỷ Nhẫn Diễm Diễn Hãn Kiểm Thẩm Trẫm"
).split()

PROVINCES_OLD = (
    "Hà Nội", "Hà Giang", "Cao Bằng", "Bắc Kạn", "Tuyên Quang", "Lào Cai", "Điện Biên",
    "Lai Châu", "Sơn La", "Yên Bái", "Hòa Bình", "Thái Nguyên", "Lạng Sơn", "Quảng Ninh",
    "Bắc Giang", "Phú Thọ", "Vĩnh Phúc", "Bắc Ninh", "Hải Dương", "Hải Phòng", "Hưng Yên",
    "Thái Bình", "Hà Nam", "Nam Định", "Ninh Bình", "Thanh Hóa", "Nghệ An", "Hà Tĩnh",
    "Quảng Bình", "Quảng Trị", "Thừa Thiên Huế", "Đà Nẵng", "Quảng Nam", "Quảng Ngãi",
    "Bình Định", "Phú Yên", "Khánh Hòa", "Ninh Thuận", "Bình Thuận", "Kon Tum", "Gia Lai",
    "Đắk Lắk", "Đắk Nông", "Lâm Đồng", "Bình Phước", "Tây Ninh", "Bình Dương", "Đồng Nai",
    "Bà Rịa - Vũng Tàu", "Hồ Chí Minh", "Long An", "Tiền Giang", "Bến Tre", "Trà Vinh",
    "Vĩnh Long", "Đồng Tháp", "An Giang", "Kiên Giang", "Cần Thơ", "Hậu Giang", "Sóc Trăng",
    "Bạc Liêu", "Cà Mau", "Huế",
)

DISTRICTS = (
    "Ba Đình", "Hoàn Kiếm", "Tây Hồ", "Long Biên", "Cầu Giấy", "Đống Đa", "Hai Bà Trưng",
    "Hoàng Mai", "Thanh Xuân", "Sóc Sơn", "Đông Anh", "Gia Lâm", "Nam Từ Liêm", "Bắc Từ Liêm",
    "Thanh Trì", "Mê Linh", "Hà Đông", "Sơn Tây", "Ba Vì", "Phúc Thọ", "Đan Phượng",
    "Hoài Đức", "Quốc Oai", "Thạch Thất", "Chương Mỹ", "Thanh Oai", "Thường Tín", "Phú Xuyên",
    "Ứng Hòa", "Mỹ Đức", "Hồng Bàng", "Ngô Quyền", "Lê Chân", "Hải An", "Kiến An", "Đồ Sơn",
    "Dương Kinh", "Thủy Nguyên", "An Dương", "An Lão", "Kiến Thụy", "Tiên Lãng", "Vĩnh Bảo",
    "Cát Hải", "Bạch Long Vĩ", "Hải Châu", "Thanh Khê", "Sơn Trà", "Ngũ Hành Sơn", "Liên Chiểu",
    "Cẩm Lệ", "Hòa Vang", "Hoàng Sa", "Ninh Kiều", "Ô Môn", "Bình Thủy", "Cái Răng", "Thốt Nốt",
    "Thủ Đức", "Gò Vấp", "Bình Thạnh", "Tân Bình", "Tân Phú", "Phú Nhuận", "Bình Tân",
    "Củ Chi", "Hóc Môn", "Bình Chánh", "Nhà Bè", "Cần Giờ", "Dĩ An", "Thuận An", "Thủ Dầu Một",
    "Bến Cát", "Tân Uyên", "Biên Hòa", "Long Khánh", "Nhơn Trạch", "Trảng Bom", "Vĩnh Cửu",
    "Định Quán", "Xuân Lộc", "Cẩm Mỹ", "Long Thành", "Thống Nhất", "Tân Châu", "Châu Đốc",
    "Long Xuyên", "Rạch Giá", "Hà Tiên", "Phú Quốc", "Vị Thanh", "Ngã Bảy", "Sóc Trăng",
    "Vĩnh Châu", "Ngã Năm", "Giá Rai", "Đầm Dơi", "Năm Căn", "Ngọc Hiển", "Tháp Mười",
    "Cao Lãnh", "Sa Đéc", "Hồng Ngự", "Lấp Vò", "Lai Vung", "Châu Thành", "Mỏ Cày Nam",
    "Mỏ Cày Bắc", "Giồng Trôm", "Ba Tri", "Bình Đại", "Chợ Lách", "Cai Lậy", "Cái Bè",
    "Gò Công", "Chợ Gạo", "Tân Phước", "Bến Lức", "Đức Hòa", "Đức Huệ", "Cần Giuộc",
    "Cần Đước", "Tân Trụ", "Thạnh Hóa", "Mộc Hóa", "Kiến Tường", "Trảng Bàng", "Gò Dầu",
    "Hòa Thành", "Dương Minh Châu", "Đồng Xoài", "Bình Long", "Phước Long", "Bù Đăng",
    "Bù Đốp", "Lộc Ninh", "Hớn Quản", "Chơn Thành", "Đà Lạt", "Bảo Lộc", "Đức Trọng",
    "Di Linh", "Lâm Hà", "Đơn Dương", "Lạc Dương", "Buôn Ma Thuột", "Buôn Hồ", "Krông Pắc",
    "Ea Kar", "Cư M'gar", "Ea H'leo", "Krông Búk", "Lắk", "Gia Nghĩa", "Đắk Mil", "Đắk R'lấp",
    "Pleiku", "An Khê", "Ayun Pa", "Chư Sê", "Chư Prông", "Đắk Đoa", "Kon Tum", "Đắk Hà",
    "Ngọc Hồi", "Quy Nhơn", "An Nhơn", "Hoài Nhơn", "Tuy Phước", "Phù Cát", "Tuy Hòa",
    "Sông Cầu", "Đông Hòa", "Nha Trang", "Cam Ranh", "Ninh Hòa", "Diên Khánh", "Vạn Ninh",
    "Phan Rang - Tháp Chàm", "Ninh Hải", "Ninh Phước", "Phan Thiết", "La Gi", "Hàm Thuận Bắc",
    "Tuy Phong", "Bắc Bình", "Tam Kỳ", "Hội An", "Điện Bàn", "Duy Xuyên", "Thăng Bình",
    "Núi Thành", "Quảng Ngãi", "Đức Phổ", "Bình Sơn", "Sơn Tịnh", "Tư Nghĩa", "Mộ Đức",
    "Đông Hà", "Quảng Trị", "Vĩnh Linh", "Gio Linh", "Hải Lăng", "Đồng Hới", "Ba Đồn",
    "Bố Trạch", "Lệ Thủy", "Quảng Trạch", "Hương Thủy", "Hương Trà", "Phong Điền",
    "Phú Vang", "Phú Lộc", "A Lưới", "Vinh", "Cửa Lò", "Thái Hòa", "Hoàng Mai", "Diễn Châu",
    "Quỳnh Lưu", "Nghi Lộc", "Hưng Nguyên", "Nam Đàn", "Đô Lương", "Thanh Chương",
    "Kỳ Anh", "Hồng Lĩnh", "Cẩm Xuyên", "Thạch Hà", "Can Lộc", "Nghi Xuân", "Đức Thọ",
    "Hương Sơn", "Hương Khê", "Sầm Sơn", "Bỉm Sơn", "Nghi Sơn", "Tĩnh Gia", "Hoằng Hóa",
    "Hậu Lộc", "Nga Sơn", "Quảng Xương", "Nông Cống", "Thọ Xuân", "Triệu Sơn", "Ngọc Lặc",
    "Hoa Lư", "Tam Điệp", "Gia Viễn", "Yên Khánh", "Kim Sơn", "Yên Mô", "Nho Quan",
    "Phủ Lý", "Duy Tiên", "Kim Bảng", "Lý Nhân", "Thanh Liêm", "Bình Lục", "Mỹ Lộc",
    "Vụ Bản", "Ý Yên", "Nghĩa Hưng", "Hải Hậu", "Giao Thủy", "Xuân Trường", "Trực Ninh",
    "Quỳnh Phụ", "Hưng Hà", "Đông Hưng", "Thái Thụy", "Tiền Hải", "Kiến Xương", "Vũ Thư",
    "Chí Linh", "Kinh Môn", "Cẩm Giàng", "Bình Giang", "Gia Lộc", "Tứ Kỳ", "Ninh Giang",
    "Thanh Miện", "Nam Sách", "Kim Thành", "Mỹ Hào", "Văn Lâm", "Văn Giang", "Yên Mỹ",
    "Ân Thi", "Khoái Châu", "Kim Động", "Tiên Lữ", "Phù Cừ", "Từ Sơn", "Quế Võ", "Tiên Du",
    "Yên Phong", "Thuận Thành", "Gia Bình", "Lương Tài", "Vĩnh Yên", "Phúc Yên", "Tam Đảo",
    "Bình Xuyên", "Yên Lạc", "Vĩnh Tường", "Lập Thạch", "Sông Lô", "Việt Trì", "Phù Ninh",
    "Lâm Thao", "Thanh Ba", "Hạ Hòa", "Cẩm Khê", "Yên Lập", "Tam Nông", "Thanh Thủy",
    "Hạ Long", "Cẩm Phả", "Uông Bí", "Móng Cái", "Đông Triều", "Quảng Yên", "Vân Đồn",
    "Tiên Yên", "Bình Liêu", "Đầm Hà", "Hải Hà", "Cô Tô", "Ba Chẽ", "Lục Ngạn", "Lục Nam",
    "Sơn Động", "Yên Thế", "Tân Yên", "Hiệp Hòa", "Lạng Giang", "Việt Yên", "Yên Dũng",
    "Sông Công", "Phổ Yên", "Đại Từ", "Định Hóa", "Phú Lương", "Đồng Hỷ", "Võ Nhai",
    "Phú Bình", "Chợ Đồn", "Ba Bể", "Ngân Sơn", "Pác Nặm", "Chợ Mới", "Na Rì", "Bạch Thông",
    "Trùng Khánh", "Quảng Hòa", "Hà Quảng", "Bảo Lạc", "Bảo Lâm", "Nguyên Bình", "Thạch An",
    "Đồng Văn", "Mèo Vạc", "Yên Minh", "Quản Bạ", "Vị Xuyên", "Bắc Mê", "Hoàng Su Phì",
    "Xín Mần", "Bắc Quang", "Quang Bình", "Sa Pa", "Bát Xát", "Mường Khương", "Si Ma Cai",
    "Bắc Hà", "Bảo Thắng", "Bảo Yên", "Văn Bàn", "Nghĩa Lộ", "Lục Yên", "Văn Yên", "Mù Cang Chải",
    "Trấn Yên", "Trạm Tấu", "Văn Chấn", "Mường Lay", "Mường Nhé", "Mường Chà", "Tủa Chùa",
    "Tuần Giáo", "Mường Ảng", "Điện Biên Đông", "Nậm Pồ", "Tam Đường", "Phong Thổ", "Sìn Hồ",
    "Mường Tè", "Than Uyên", "Tân Uyên", "Nậm Nhùn", "Quỳnh Nhai", "Thuận Châu", "Mường La",
    "Bắc Yên", "Phù Yên", "Mộc Châu", "Vân Hồ", "Yên Châu", "Mai Sơn", "Sông Mã", "Sốp Cộp",
    "Mai Châu", "Tân Lạc", "Lạc Sơn", "Kim Bôi", "Lạc Thủy", "Yên Thủy", "Cao Phong",
    "Đà Bắc", "Lương Sơn", "Hữu Lũng", "Chi Lăng", "Cao Lộc", "Văn Lãng", "Tràng Định",
    "Bình Gia", "Bắc Sơn", "Đình Lập", "Lộc Bình", "Sơn Dương", "Yên Sơn", "Hàm Yên",
    "Chiêm Hóa", "Na Hang", "Lâm Bình", "Vũng Tàu", "Bà Rịa", "Phú Mỹ", "Xuyên Mộc",
    "Long Điền", "Đất Đỏ", "Côn Đảo", "Tân Thành", "Mỹ Tho", "Bến Tre", "Trà Vinh", "Duyên Hải",
    "Cầu Ngang", "Tiểu Cần", "Cầu Kè", "Trà Ôn", "Vũng Liêm", "Mang Thít", "Bình Minh",
    "Tam Bình", "Long Hồ", "Phụng Hiệp", "Long Mỹ", "Châu Phú", "Tịnh Biên", "Tri Tôn",
    "Thoại Sơn", "Chợ Mới", "Phú Tân", "An Phú", "U Minh", "Vĩnh Thuận", "Giồng Riềng",
    "Gò Quao", "An Biên", "Hòn Đất", "Kiên Lương", "Kiên Hải", "Hồng Dân", "Phước Long",
    "Đông Hải", "Hòa Bình", "Thới Bình", "Trần Văn Thời", "Cái Nước", "Phú Tân",
)

WARD_PARTS = (
    "Phúc Xá Trúc Bạch Vĩnh Phúc Cống Vị Liễu Giai Ngọc Hà Đội Cấn Ngọc Khánh Kim Mã Giảng Võ "
    "Thành Công Hàng Bạc Hàng Bồ Hàng Buồm Hàng Đào Hàng Gai Hàng Mã Lý Thái Tổ Tràng Tiền "
    "Phan Chu Trinh Cửa Nam Đồng Xuân Quán Thánh Nghĩa Đô Dịch Vọng Mai Dịch Yên Hòa Trung Hòa "
    "Quan Hoa Láng Thượng Ô Chợ Dừa Văn Miếu Quốc Tử Giám Khâm Thiên Phương Mai Kim Liên "
    "Tân Định Đa Kao Bến Nghé Bến Thành Nguyễn Thái Bình Phạm Ngũ Lão Cầu Ông Lãnh Cô Giang "
    "Nguyễn Cư Trinh Cầu Kho Hiệp Phú Tăng Nhơn Phú Long Thạnh Mỹ Phước Long Thảo Điền "
    "An Khánh Bình Trưng Cát Lái Linh Chiểu Linh Trung Hiệp Bình Chánh Tam Bình Trường Thọ "
    "Xã Đàn Quỳnh Lôi Bạch Mai Vĩnh Tuy Thanh Lương Đồng Tâm Trương Định Định Công Giáp Bát "
    "Tương Mai Yên Sở Lĩnh Nam Trần Phú Hoàng Liệt Thịnh Liệt Khương Đình Hạ Đình Nhân Chính"
).split()

STREETS = (
    "Lê Lợi", "Trần Hưng Đạo", "Nguyễn Trãi", "Lý Thường Kiệt", "Hai Bà Trưng", "Quang Trung",
    "Nguyễn Huệ", "Điện Biên Phủ", "Võ Thị Sáu", "Nguyễn Thị Minh Khai", "Phạm Ngũ Lão",
    "Hoàng Hoa Thám", "Phan Đình Phùng", "Trường Chinh", "Lê Duẩn", "Cách Mạng Tháng Tám",
    "Nguyễn Văn Cừ", "Tôn Đức Thắng", "Bạch Đằng", "Hùng Vương", "Lạc Long Quân",
    "Âu Cơ", "Nguyễn Chí Thanh", "Giải Phóng", "Xã Đàn", "Kim Mã", "Đội Cấn", "Láng Hạ",
    "Nguyễn Khuyến", "Phùng Hưng", "Hàng Bông", "Hàng Chiếu", "Lãn Ông", "Yết Kiêu",
    "Triệu Việt Vương", "Bà Triệu", "Lý Tự Trọng", "Nguyễn Đình Chiểu", "Huỳnh Thúc Kháng",
    "Ỷ Lan", "Ngô Gia Tự", "Nguyễn Tất Thành", "Phạm Văn Đồng", "Võ Nguyên Giáp",
)

FORM_LABELS = (
    "TỜ KHAI THAM GIA, ĐIỀU CHỈNH THÔNG TIN BẢO HIỂM XÃ HỘI, BẢO HIỂM Y TẾ",
    "CỘNG HÒA XÃ HỘI CHỦ NGHĨA VIỆT NAM", "Độc lập - Tự do - Hạnh phúc",
    "BẢO HIỂM XÃ HỘI VIỆT NAM", "Mẫu TK1-TS", "Mẫu TK1-TS (Ban hành kèm theo QĐ số 490/QĐ-BHXH)",
    "I. Áp dụng đối với người chưa được cấp mã số BHXH", "II. Áp dụng đối với người đã có mã số BHXH",
    "[01]. Họ và tên (viết chữ in hoa):", "[02]. Ngày, tháng, năm sinh:", "[03]. Giới tính:",
    "[04]. Quốc tịch:", "[05]. Dân tộc:", "[06]. Nơi đăng ký giấy khai sinh:",
    "[07]. Địa chỉ nhận kết quả:", "[08]. Số CCCD/ĐDCN/Hộ chiếu:", "[09]. Điện thoại liên hệ:",
    "[10]. Họ tên cha/mẹ/giám hộ (đối với trẻ em dưới 6 tuổi):", "[11]. Mức tiền đóng:",
    "[12]. Phương thức đóng:", "[13]. Nơi đăng ký khám bệnh, chữa bệnh ban đầu:",
    "Mã số BHXH:", "Mã số thẻ BHYT:", "Số định danh cá nhân:", "Nơi cấp:", "Ngày cấp:",
    "Tỉnh/Thành phố", "Quận/Huyện", "Xã/Phường/Thị trấn", "Số nhà, đường phố, thôn, xóm",
    "Người kê khai", "(Ký, ghi rõ họ tên)", "Xác nhận của cơ quan BHXH", "Ghi chú:",
    "Tôi cam đoan những nội dung kê khai là đúng và chịu trách nhiệm trước pháp luật",
    "Thủ trưởng đơn vị", "Cán bộ thu", "Cán bộ sổ, thẻ", "Giám đốc", "Kế toán trưởng",
    "Đơn vị:", "Mã đơn vị:", "Hồ sơ kèm theo:", "Số hồ sơ:", "Phiếu giao nhận hồ sơ",
    "Quyết định số 1333/QĐ-BHXH", "Thông tư số 01/2023/TT-VPCP", "Kinh", "Tày", "Thái", "Mường",
    "Khmer", "Hoa", "Nùng", "H'Mông", "Dao", "Ê Đê", "Ba Na", "Xơ Đăng", "Sán Chay", "Cơ Ho",
    "Nam", "Nữ", "Việt Nam", "Hằng tháng", "3 tháng", "6 tháng", "12 tháng", "Một lần",
    "Bệnh viện Đa khoa tỉnh", "Trạm Y tế xã", "Trung tâm Y tế huyện", "Phòng khám Đa khoa khu vực",
    "Bệnh viện Bạch Mai", "Bệnh viện Chợ Rẫy", "Bệnh viện Việt Đức",
)
